'use strict'
// Outcomes across processes: a producer here waits for jobs that a worker process runs
// (queue.waitFor), and asks where jobs are (queue.getJob). Only jobs added with keepOutcomeMs
// record an outcome; the others cost nothing and are found only while they wait, run, are
// delayed or dead.
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, MODES, keysOf } = require('./helpers/redis-server')
const { startFixture } = require('./helpers/child')

for (const mode of MODES) {
  test(`[${mode}] waitFor() hears results and errors from a worker in another process`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('outcomes')
    const queue = new ReliableQueue(name, { url: redis.url, mode, keepOutcomeMs: 60_000 })
    t.after(() => queue.close())

    const ids = await queue.addBulk([{ n: 21 }, { none: true }, { fail: 'x' }], { jobIds: ['double', 'none', 'fail'] })
    const plain = await queue.add({ n: 1 }, { keepOutcomeMs: 0 })
    // waiters from before the jobs run
    const waits = ids.map((id) => queue.waitFor(id, { timeoutMs: 20_000 }))

    const child = startFixture('worker.js', { HF_URL: redis.url, HF_QUEUE: name, HF_MODE: mode, HF_BEHAVIOUR: 'outcomes', HF_MAX_ATTEMPTS: '1' })
    t.after(() => child.stop('SIGKILL'))
    await child.waitLine((m) => m.ready)
    const [double, none, fail] = await Promise.all(waits)
    assert.equal(double.state, 'completed')
    assert.equal(double.result.doubled, 42)
    assert.equal(double.result.by, child.proc.pid, 'run by the other process')
    assert.deepEqual(none, { state: 'completed', result: undefined })
    assert.deepEqual(fail, { state: 'dead', error: 'refused x' })

    // after the fact, from the kept record, and from a second queue object
    const other = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => other.close())
    assert.equal((await other.waitFor('double', { timeoutMs: 1000 })).result.doubled, 42)
    assert.deepEqual(await other.getJob('fail'), { id: 'fail', state: 'dead', error: 'refused x' })
    assert.equal((await other.getJob('double')).state, 'completed')

    // a job that kept nothing: no record, and waitFor times out with a coded error
    await waitFor(async () => (await queue.stats()).completed === 3, 10_000, 'all ran')
    await assert.rejects(queue.waitFor(plain, { timeoutMs: 200 }), { code: 'ERR_HOLDFAST_TIMEOUT' })
    assert.equal((await queue.getJob(plain)).state, 'unknown')
    const outcomeKeys = (await redis.client.keys(`holdfast:{${name}}:outcome:*`)).sort()
    assert.deepEqual(outcomeKeys, ['double', 'fail', 'none'].map((id) => `holdfast:{${name}}:outcome:${id}`))
    // what stays: the records (expiring) and the short outcomes stream; nothing per plain job
    // (and, while the child's worker runs, its heartbeat and the scheduler lease it holds)
    assert.deepEqual(
      (await keysOf(redis.client, name)).filter((k) => !k.includes(':outcome:')),
      [`holdfast:{${name}}:dead`, `holdfast:{${name}}:outcomes`, `holdfast:{${name}}:scheduler`, ...(mode === 'stream' ? [`holdfast:{${name}}:stream`] : []), `holdfast:{${name}}:workers`].sort(),
    )
  })
}

test('getJob() tells waiting, active, delayed and dead jobs apart, with their data', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const name = uniqueName('get-job')
  const queue = new ReliableQueue(name, { url: redis.url })
  t.after(() => queue.close())
  await queue.add({ hold: true }, { jobId: 'held' })
  const child = startFixture('worker.js', { HF_URL: redis.url, HF_QUEUE: name, HF_BEHAVIOUR: 'outcomes', HF_CONCURRENCY: '1', HF_PREFETCH: '0', HF_MAX_ATTEMPTS: '1' })
  t.after(() => child.stop('SIGKILL'))
  await child.waitLine((m) => m.ready)
  await waitFor(async () => (await queue.stats()).active === 1, 10_000, 'the held job taken')
  // its one slot is taken and it reads nothing ahead (HF_PREFETCH 0): the next job waits
  await queue.add({ n: 2 }, { jobId: 'behind' })
  const runAt = new Date(Date.now() + 3_600_000)
  await queue.add({ n: 3 }, { jobId: 'later', runAt })

  assert.deepEqual(await queue.getJob('held'), { id: 'held', state: 'active', data: { hold: true }, attempt: 1 })
  assert.deepEqual(await queue.getJob('behind'), { id: 'behind', state: 'waiting', data: { n: 2 }, attempt: 1 })
  const later = await queue.getJob('later')
  assert.equal(later.state, 'delayed')
  assert.equal(later.runAt.getTime(), runAt.getTime())
  assert.deepEqual(await queue.getJob('never'), { id: 'never', state: 'unknown' })

  await assert.rejects(queue.getJob(''), { code: 'ERR_HOLDFAST_INVALID_ARGUMENT' })
  await assert.rejects(queue.waitFor(42), { code: 'ERR_HOLDFAST_INVALID_ARGUMENT' })
  await assert.rejects(queue.waitFor('x', { timeoutMs: -1 }), { code: 'ERR_HOLDFAST_INVALID_ARGUMENT' })
  await assert.rejects(queue.waitFor('x', { timeout: 5 }), /unknown waitFor options key 'timeout'; did you mean 'timeoutMs'/)
  await assert.rejects(queue.add(1, { keepOutcomeMs: -5 }), { code: 'ERR_HOLDFAST_INVALID_ARGUMENT' })
  assert.throws(() => new ReliableQueue(name, { keepOutcomeMs: 1.5 }), { code: 'ERR_HOLDFAST_INVALID_ARGUMENT' })
})

test('a result JSON cannot carry is recorded without it, and reported', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const queue = new ReliableQueue(uniqueName('bad-result'), { url: redis.url, keepOutcomeMs: 60_000 })
  t.after(() => queue.close())
  const errors = []
  const worker = queue.process(async () => ({ big: 10n }))
  worker.on('error', (e) => errors.push(e))
  const id = await queue.add(1)
  assert.deepEqual(await queue.waitFor(id, { timeoutMs: 10_000 }), { state: 'completed', result: undefined })
  assert.equal(errors.length, 1)
  assert.equal(errors[0].code, 'ERR_HOLDFAST_INVALID_PAYLOAD')
  await worker.close()
})
