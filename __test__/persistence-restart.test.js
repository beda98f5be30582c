'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { RedisServer } = require('../scripts/redis-server')
const { uniqueName, waitFor, MODES } = require('./helpers/redis-server')

for (const mode of MODES) {
  test(`[${mode}] Redis with AOF killed mid-run and restarted: every job accepted before the crash still runs`, async (t) => {
    // appendfsync always: every write Redis acknowledged is on disk, so the crash loses nothing
    // Redis accepted, and holdfast must then lose nothing either.
    const server = await RedisServer.start({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] })
    t.after(() => server.close())
    const queue = new ReliableQueue(uniqueName('aof'), { url: server.url, mode })
    t.after(() => queue.close())
    const total = 300
    const ids = await queue.addBulk(Array.from({ length: total }, (_, i) => i))

    const done = new Set()
    const errors = []
    const worker = queue.process(async (job) => {
      await new Promise((r) => setTimeout(r, 5))
      done.add(job.id)
    }, { concurrency: 10, visibilityTimeoutMs: 1000 })
    worker.on('error', (e) => errors.push(e.code))
    await waitFor(() => done.size >= 50, 20_000, 'some progress')
    await server.stop() // SIGKILL mid-run, jobs in flight
    await new Promise((r) => setTimeout(r, 300))
    await server.restart()

    await waitFor(() => ids.every((id) => done.has(id)), 40_000, 'every job to run')
    await waitFor(async () => {
      const s = await queue.stats().catch(() => null)
      return s && s.waiting === 0 && s.active === 0
    }, 20_000, 'an empty queue')
    await worker.close()
    assert.ok(errors.length > 0, 'the outage was reported')
    assert.ok(errors.every((c) => c === 'ERR_HOLDFAST_CONNECTION'), errors.join())
    assert.equal((await queue.stats()).dead, 0)
  })
}
