// Types of the ES module entry (lib/holdfast.mjs): the CommonJS entry's, re-exported.
import * as holdfast from './holdfast.js'

export * from './holdfast.js'
export default holdfast
