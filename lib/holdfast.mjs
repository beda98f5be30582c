// The ES module entry: the same objects as the CommonJS entry (lib/holdfast.js), so a program
// that mixes `import` and `require` shares one native binding and one set of classes.
import holdfast from './holdfast.js'

export const { ReliableQueue, Worker, Job, DeadLetters, HoldfastError, metrics, listQueues, METRICS_CONTENT_TYPE } = holdfast
export default holdfast
