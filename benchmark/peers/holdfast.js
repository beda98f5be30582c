'use strict'
// holdfast through its public JS API: one peer per mode.

const path = require('node:path')
const { execFileSync } = require('node:child_process')

const ROOT = path.join(__dirname, '..', '..')

const peer = (mode) => ({
  name: mode === 'stream' ? 'holdfast' : `holdfast-${mode}`,

  /** Versions and settings recorded in results.json. Throws if the peer cannot run. */
  describe() {
    require(ROOT) // fails early with the loader's message if the native addon is not built
    let commit = null
    try {
      commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    } catch {}
    return { version: require(path.join(ROOT, 'package.json')).version, commit, mode }
  },

  /** Keys a queue opened with this prefix may create (used to clean up on an external REDIS_URL). */
  keyPattern(prefix) {
    return `${prefix}:*`
  },

  async open({ url, queue, prefix }) {
    const { ReliableQueue } = require(ROOT)
    const q = new ReliableQueue(queue, { url, prefix, mode })
    return {
      add: (data) => q.add(data),

      async addBulk(items) {
        const ids = await q.addBulk(items)
        return ids.length
      },

      /** `onData(job.data)` runs inside the handler; the handler itself is `async (job) => job.data`. */
      startWorker({ concurrency, onData, onFailed, onError }) {
        const w = q.process(
          async (job) => {
            onData(job.data)
            return job.data
          },
          { concurrency },
        )
        w.on('failed', (job, err) => onFailed(err))
        w.on('error', onError)
        return { close: () => w.close() }
      },

      async counts() {
        const s = await q.stats()
        return { waiting: s.waiting, active: s.active, delayed: s.delayed, dead: s.dead, completed: null }
      },

      close: () => q.close(),
    }
  },
})

module.exports = { stream: peer('stream'), list: peer('list') }
