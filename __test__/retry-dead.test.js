'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, MODES, deadLetters } = require('./helpers/redis-server')

for (const mode of MODES) {
  test(`[${mode}] a failing job is retried up to maxAttempts, then goes to dead with its error`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('retry')
    const queue = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => queue.close())
    const id = await queue.add({ x: 1 }, { jobId: 'flaky-1' })

    const attempts = []
    const failed = []
    const dead = []
    const worker = queue.process(async (job) => {
      attempts.push([job.id, job.attempt])
      throw new Error(`boom ${job.attempt}`)
    }, { maxAttempts: 3 })
    worker.on('failed', (job, err) => failed.push([job.id, err.message]))
    worker.on('dead', (jobId, reason) => dead.push([jobId, reason]))
    await waitFor(() => dead.length === 1, 10_000, 'dead event')
    await worker.close()

    assert.deepEqual(attempts, [[id, 1], [id, 2], [id, 3]])
    assert.deepEqual(failed.map((f) => f[1]), ['boom 1', 'boom 2', 'boom 3'])
    assert.deepEqual(dead, [['flaky-1', 'boom 3']])
    const stats = await queue.stats()
    assert.equal(stats.dead, 1)
    assert.equal(stats.waiting + stats.active, 0)
    const [entry] = await deadLetters(redis.client, name)
    assert.equal(entry.id, 'flaky-1')
    assert.equal(entry.err, 'boom 3')
    assert.equal(entry.a, 3)
    assert.deepEqual(JSON.parse(entry.d), { x: 1 })
  })

  test(`[${mode}] per-job maxAttempts overrides the worker default; a retry that then succeeds completes`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const queue = new ReliableQueue(uniqueName('retry2'), { url: redis.url, mode })
    t.after(() => queue.close())
    await queue.add('once', { maxAttempts: 1 })
    await queue.add('twice')
    const runs = []
    const completed = []
    const dead = []
    const worker = queue.process(async (job) => {
      runs.push([job.data, job.attempt])
      if (job.data === 'once' || job.attempt < 2) throw new Error('no')
    }, { maxAttempts: 5 })
    worker.on('completed', (job) => completed.push(job.data))
    worker.on('dead', (id) => dead.push(id))
    await waitFor(() => completed.length === 1 && dead.length === 1, 10_000, 'outcomes')
    await worker.close()
    assert.deepEqual(runs.filter((r) => r[0] === 'once'), [['once', 1]])
    assert.deepEqual(runs.filter((r) => r[0] === 'twice'), [['twice', 1], ['twice', 2]])
    assert.deepEqual(completed, ['twice'])
  })

  test(`[${mode}] handlers that throw non-Errors, or return non-Promises or nothing, are handled`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const queue = new ReliableQueue(uniqueName('odd'), { url: redis.url, mode })
    t.after(() => queue.close())
    const throws = {
      string: () => { throw 'a string' },
      undefined: () => { throw undefined },
      object: () => { throw { code: 7 } },
      rejectNull: () => Promise.reject(null),
      cyclic: () => { const o = {}; o.o = o; throw o },
    }
    const succeeds = {
      nothing: () => {},
      number: () => 5,
      thenable: () => ({ then: (ok) => ok('fine') }),
    }
    for (const k of [...Object.keys(throws), ...Object.keys(succeeds)]) await queue.add(k)
    const outcomes = {}
    const worker = queue.process((job) => (throws[job.data] ?? succeeds[job.data])(), { maxAttempts: 1 })
    worker.on('completed', (job) => (outcomes[job.data] = 'completed'))
    worker.on('failed', (job, err) => {
      assert.ok(err instanceof Error, 'failed always gets an Error')
      outcomes[job.data] = err.message
    })
    await waitFor(() => Object.keys(outcomes).length === 8, 10_000, 'eight outcomes')
    await waitFor(async () => (await queue.stats()).dead === 5, 10_000, 'five dead')
    await worker.close()
    assert.equal(outcomes.string, 'a string')
    assert.match(outcomes.undefined, /non-Error thrown: undefined/)
    assert.match(outcomes.object, /non-Error thrown: \{"code":7\}/)
    assert.match(outcomes.rejectNull, /non-Error thrown: null/)
    assert.match(outcomes.cyclic, /non-Error thrown/)
    for (const k of Object.keys(succeeds)) assert.equal(outcomes[k], 'completed', k)
  })

  test(`[${mode}] a listener that throws does not break the worker`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const queue = new ReliableQueue(uniqueName('listener'), { url: redis.url, mode })
    t.after(() => queue.close())
    await queue.addBulk([1, 2, 3])
    let runs = 0
    const errors = []
    const worker = queue.process(async () => { runs++ })
    worker.on('completed', () => { throw new Error('listener bug') })
    worker.on('error', (e) => errors.push(e.message))
    await waitFor(() => runs === 3 && errors.length === 3, 10_000, 'three runs')
    await waitFor(async () => (await queue.stats()).active === 0, 10_000, 'acks')
    await worker.close()
    assert.deepEqual(errors, ['listener bug', 'listener bug', 'listener bug'])
  })
}
