'use strict'
// bee-queue: Queue.saveAll + Queue.process(concurrency), with removeOnSuccess (like holdfast,
// it then keeps nothing finished in Redis) and its event pub/sub turned off for speed.

const version = require('./version')

const SETTINGS = { removeOnSuccess: true, removeOnFailure: false, getEvents: false, sendEvents: false, activateDelayedJobs: false }

module.exports = {
  name: 'bee-queue',

  describe() {
    return { version: version('bee-queue'), settings: 'removeOnSuccess, getEvents/sendEvents off' }
  },

  keyPattern(prefix) {
    return `${prefix}:*`
  },

  async open({ url, queue, prefix }) {
    const Queue = require('bee-queue')
    const producer = new Queue(queue, { redis: { url }, prefix, isWorker: false, ...SETTINGS })
    producer.on('error', () => {})
    await producer.ready()
    const workers = new Set()
    return {
      add: (data) => producer.createJob(data).save(),

      async addBulk(items) {
        const errors = await producer.saveAll(items.map((data) => producer.createJob(data)))
        if (errors.size > 0) throw new Error(`bee-queue saveAll: ${errors.size} jobs failed`)
        return items.length
      },

      startWorker({ concurrency, onData, onFailed, onError }) {
        const w = new Queue(queue, { redis: { url }, prefix, ...SETTINGS })
        w.on('error', onError)
        w.on('failed', (job, err) => onFailed(err))
        w.process(concurrency, async (job) => {
          onData(job.data)
          return job.data
        })
        workers.add(w)
        return {
          close: async () => {
            workers.delete(w)
            await w.close()
          },
        }
      },

      async counts() {
        const h = await producer.checkHealth()
        return { waiting: h.waiting, active: h.active, delayed: h.delayed, dead: h.failed, completed: null }
      },

      async close() {
        await Promise.all([...workers].map((w) => w.close()))
        await producer.close()
      },
    }
  },
}
