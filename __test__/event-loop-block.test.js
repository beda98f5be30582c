'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, MODES } = require('./helpers/redis-server')
const { startFixture } = require('./helpers/child')

for (const mode of MODES) {
  test(`[${mode}] a handler that blocks the event loop past the visibility timeout is not redelivered`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('block')
    const queue = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => queue.close())

    // The blocking worker runs in its own process: its lease is renewed by Rust timers while
    // its JS thread spins for 4x the visibility timeout.
    const blocker = startFixture('worker.js', {
      HF_URL: redis.url,
      HF_QUEUE: name,
      HF_MODE: mode,
      HF_BEHAVIOUR: 'block',
      HF_BLOCK_MS: '2000',
      HF_VISIBILITY_MS: '500',
      HF_CONCURRENCY: '1',
    })
    t.after(() => blocker.proc.kill('SIGKILL'))
    await blocker.waitLine((m) => m.ready)
    const id = await queue.add({ heavy: true })
    await blocker.waitLine((m) => m.started === id)

    const seenHere = []
    const watcher = queue.process(async (job) => seenHere.push(job.id), { visibilityTimeoutMs: 500 })
    await blocker.waitLine((m) => m.done === id, 10_000)
    await waitFor(async () => (await queue.stats()).active === 0, 10_000, 'the ack')
    await new Promise((r) => setTimeout(r, 300))
    await watcher.close()
    assert.deepEqual(seenHere, [], 'the other worker never received the blocked job')
    const stats = await queue.stats()
    assert.equal(stats.dead, 0)
    assert.equal(stats.waiting, 0)
  })
}
