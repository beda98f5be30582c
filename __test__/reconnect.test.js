'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, MODES } = require('./helpers/redis-server')

for (const mode of MODES) {
  test(`[${mode}] Redis killed and restarted: add rejects with a code meanwhile, the worker resumes, no job lost`, async (t) => {
    const redis = await useRedis({ restartable: true })
    t.after(() => redis.close())
    const queue = new ReliableQueue(uniqueName('restart'), { url: redis.url, mode })
    t.after(() => queue.close())

    const done = new Set()
    const errors = []
    const worker = queue.process(async (job) => { done.add(job.data) }, { concurrency: 10 })
    worker.on('error', (e) => errors.push(e.code))
    await queue.addBulk([0, 1, 2, 3, 4])
    await waitFor(() => done.size === 5, 10_000, 'first jobs')

    await redis.server.stop()
    const started = Date.now()
    const err = await queue.add(99).then(() => null, (e) => e)
    assert.ok(err, 'add must reject while Redis is down')
    assert.equal(err.code, 'ERR_HOLDFAST_CONNECTION')
    assert.ok(Date.now() - started < 15_000, 'add did not hang')
    assert.doesNotMatch(err.message, /ERR_HOLDFAST/, 'the code is not left in the message')
    await waitFor(() => errors.length > 0, 10_000, 'a worker error event')
    assert.ok(errors.every((c) => c.startsWith('ERR_HOLDFAST_')), errors.join())

    await redis.server.restart()
    // the queue's own connection heals on the next call
    await waitFor(() => queue.add(5).then(() => true, () => false), 15_000, 'add to succeed again')
    await queue.addBulk([6, 7, 8, 9])
    await waitFor(() => done.size === 10, 20_000, 'the worker to resume')
    await worker.close()
    assert.deepEqual([...done].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  })
}
