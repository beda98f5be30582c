'use strict'
// One worker process of the demo. Reports each finished job to the parent over IPC and shuts
// down gracefully on SIGTERM (stop fetching, finish in-flight jobs, flush acks, exit).
const { ReliableQueue } = require('..')

const queue = new ReliableQueue('demo-emails')
const worker = queue.process(
  async (job) => {
    await new Promise((r) => setTimeout(r, 2 + Math.random() * 8)) // "send the email"
    process.send({ done: job.id, attempt: job.attempt })
  },
  { concurrency: 50, visibilityTimeoutMs: 2000 },
)
worker.on('stalled', (id) => process.send({ stalled: id }))
worker.on('error', (err) => process.send({ error: `${err.code}: ${err.message}` }))
process.send({ ready: worker.id })

const shutdown = async () => {
  await queue.close()
  if (process.connected) process.disconnect()
}
process.once('SIGTERM', shutdown)
process.once('disconnect', shutdown) // the demo died: don't linger as an orphan
