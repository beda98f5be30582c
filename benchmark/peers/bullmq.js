'use strict'
// BullMQ: Queue.addBulk + Worker, on its own Redis connection. The driver is ioredis with
// maxRetriesPerRequest: null, as BullMQ requires; BullMQ 6 also accepts a node-redis client, used
// only when ioredis cannot be loaded (or when BENCH_BULLMQ_DRIVER=node-redis).

function tryRequire(name) {
  try {
    return require(name)
  } catch (e) {
    if (e && e.code === 'MODULE_NOT_FOUND' && String(e.message).includes(`'${name}'`)) return null
    throw e
  }
}

const version = require('./version')

function pickDriver() {
  const wanted = process.env.BENCH_BULLMQ_DRIVER
  if (wanted && wanted !== 'ioredis' && wanted !== 'node-redis') {
    throw new Error(`BENCH_BULLMQ_DRIVER must be ioredis or node-redis, got ${wanted}`)
  }
  if (wanted !== 'node-redis') {
    const mod = tryRequire('ioredis')
    if (mod) return { name: 'ioredis', version: version('ioredis'), mod }
    if (wanted === 'ioredis') throw new Error('BENCH_BULLMQ_DRIVER=ioredis but ioredis cannot be loaded (npm install ioredis)')
  }
  const mod = tryRequire('redis')
  if (!mod) throw new Error('BullMQ needs a Redis driver: install ioredis (or redis >= 5)')
  return { name: 'node-redis', version: version('redis'), mod }
}

let driver = null

async function connect(url) {
  if (driver.name === 'ioredis') {
    const IORedis = driver.mod.default ?? driver.mod.Redis ?? driver.mod
    const conn = new IORedis(url, { maxRetriesPerRequest: null })
    conn.on('error', () => {}) // surfaced through BullMQ's own errors
    return { conn, quit: () => conn.quit() }
  }
  const conn = driver.mod.createClient({ url })
  conn.on('error', () => {})
  await conn.connect()
  return { conn, quit: () => conn.quit() }
}

module.exports = {
  name: 'bullmq',

  describe() {
    require('bullmq')
    driver = pickDriver()
    if (driver.name !== 'ioredis') {
      const why = process.env.BENCH_BULLMQ_DRIVER === 'node-redis' ? 'BENCH_BULLMQ_DRIVER=node-redis' : 'ioredis is not installed'
      process.stderr.write(`bench: bullmq runs on node-redis ${driver.version} (${why})\n`)
    }
    return { version: version('bullmq'), driver: driver.name, driverVersion: driver.version, jobOptions: 'removeOnComplete: true' }
  },

  keyPattern(prefix) {
    return `${prefix}:*`
  },

  async open({ url, queue, prefix }) {
    const { Queue, Worker } = require('bullmq')
    const { conn, quit } = await connect(url)
    const q = new Queue(queue, { connection: conn, prefix })
    q.on('error', () => {})
    const workers = new Set()
    return {
      add: (data) => q.add('job', data, { removeOnComplete: true }),

      async addBulk(items) {
        // removeOnComplete: like holdfast, keep nothing finished in Redis (BullMQ's default keeps all)
        const jobs = await q.addBulk(items.map((data) => ({ name: 'job', data, opts: { removeOnComplete: true } })))
        return jobs.length
      },

      startWorker({ concurrency, onData, onFailed, onError }) {
        const w = new Worker(
          queue,
          async (job) => {
            onData(job.data)
            return job.data
          },
          { connection: conn, prefix, concurrency },
        )
        w.on('failed', (job, err) => onFailed(err))
        w.on('error', onError)
        workers.add(w)
        return {
          close: async () => {
            workers.delete(w)
            await w.close()
          },
        }
      },

      async counts() {
        const c = await q.getJobCounts('wait', 'active', 'delayed', 'failed', 'completed', 'prioritized', 'paused')
        return {
          waiting: c.wait + (c.prioritized || 0) + (c.paused || 0),
          active: c.active,
          delayed: c.delayed,
          dead: c.failed,
          completed: null, // removed on completion
        }
      },

      async close() {
        await Promise.all([...workers].map((w) => w.close()))
        await q.close()
        await quit()
      },
    }
  },
}
