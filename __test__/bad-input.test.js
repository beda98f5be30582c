'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, freePort, MODES, key } = require('./helpers/redis-server')

const INVALID = { code: 'ERR_HOLDFAST_INVALID_ARGUMENT' }

test('bad constructor arguments throw coded errors that say what to do', () => {
  assert.throws(() => new ReliableQueue(''), { ...INVALID, message: /non-empty/ })
  assert.throws(() => new ReliableQueue('x'.repeat(201)), { ...INVALID, message: /limit is 200/ })
  assert.throws(() => new ReliableQueue(42), INVALID)
  assert.throws(() => new ReliableQueue('a{b}'), INVALID)
  assert.throws(() => new ReliableQueue('q', { url: 'not a url' }), { ...INVALID, message: /invalid Redis url/ })
  assert.throws(() => new ReliableQueue('q', { url: 'redis://user:hunter2@127.0.0.1:notaport' }), (e) => {
    assert.equal(e.code, INVALID.code)
    assert.doesNotMatch(e.message, /hunter2/, 'passwords never appear in errors')
    return true
  })
  assert.throws(() => new ReliableQueue('q', { mode: 'fifo' }), { ...INVALID, message: /unknown mode/ })
  assert.throws(() => new ReliableQueue('q', { mode: 3 }), INVALID)
  assert.throws(() => new ReliableQueue('q', { listKey: 'jobs' }), { ...INVALID, message: /listKey needs mode 'list'/ })
  assert.throws(() => new ReliableQueue('q', { mode: 'list', listKey: 5 }), INVALID)
  assert.throws(() => new ReliableQueue('q', { mode: 'list', listKey: '' }), INVALID)
  assert.throws(() => new ReliableQueue('q', null), INVALID)
  assert.throws(() => new ReliableQueue('q', { maxPayloadBytes: -1 }), INVALID)
})

test('an unreachable Redis rejects with ERR_HOLDFAST_CONNECTION, it does not hang', async () => {
  const port = await freePort() // nothing listens there
  const queue = new ReliableQueue(uniqueName('down'), { url: `redis://:secret@127.0.0.1:${port}` })
  const err = await queue.add({ a: 1 }).then(() => null, (e) => e)
  assert.equal(err?.code, 'ERR_HOLDFAST_CONNECTION')
  assert.doesNotMatch(err.message, /secret/)
  await assert.rejects(queue.stats(), { code: 'ERR_HOLDFAST_CONNECTION' })
  await queue.close()
})

test('bad payloads, options and handlers are rejected; nothing of a bad batch is added', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const name = uniqueName('bad')
  const queue = new ReliableQueue(name, { url: redis.url, maxPayloadBytes: 1024 })
  t.after(() => queue.close())
  const cyclic = {}
  cyclic.self = cyclic
  const PAYLOAD = { code: 'ERR_HOLDFAST_INVALID_PAYLOAD', name: 'TypeError' }
  await assert.rejects(queue.add(cyclic), { ...PAYLOAD, message: /JSON/ })
  await assert.rejects(queue.add({ n: 10n }), PAYLOAD)
  await assert.rejects(queue.add(undefined), { ...PAYLOAD, message: /undefined/ })
  await assert.rejects(queue.add(() => 1), PAYLOAD)
  await assert.rejects(queue.add('x'.repeat(2000)), { code: 'ERR_HOLDFAST_PAYLOAD_TOO_LARGE', message: /2002 bytes/ })
  await assert.rejects(queue.add('é'.repeat(600)), { code: 'ERR_HOLDFAST_PAYLOAD_TOO_LARGE' })
  await assert.rejects(queue.add(1, { jobId: '' }), INVALID)
  await assert.rejects(queue.add(1, { jobId: 'x'.repeat(300) }), INVALID)
  await assert.rejects(queue.add(1, { maxAttempts: 0 }), INVALID)
  await assert.rejects(queue.add(1, { maxAttempts: 'three' }), INVALID)
  await assert.rejects(queue.addBulk('nope'), INVALID)
  await assert.rejects(queue.addBulk([1, 2, cyclic, 4]), { ...PAYLOAD, message: /item 2/ })
  await assert.rejects(queue.addBulk([1, 'x'.repeat(5000)]), { code: 'ERR_HOLDFAST_PAYLOAD_TOO_LARGE', message: /item 1/ })
  // a bad add in the same tick as good ones does not sink them
  const settled = await Promise.allSettled([
    queue.add('fine'),
    queue.add(undefined),
    queue.add(1, { maxAttempts: 1.5 }),
    queue.add(1, { jobId: 'é'.repeat(200) }),
  ])
  assert.deepEqual(settled.map((r) => r.status), ['fulfilled', 'rejected', 'rejected', 'rejected'])
  assert.equal((await queue.stats()).waiting, 1, 'only the one good job was added')

  assert.throws(() => queue.process('not a function'), { ...INVALID, message: /handler function/ })
  assert.throws(() => queue.process(async () => {}, { concurrency: 0 }), INVALID)
  assert.throws(() => queue.process(async () => {}, { concurrency: -5 }), INVALID)
  assert.throws(() => queue.process(async () => {}, { concurrency: 1.5 }), INVALID)
  assert.throws(() => queue.process(async () => {}, { visibilityTimeoutMs: -1 }), INVALID)
  assert.throws(() => queue.process(async () => {}, { visibilityTimeoutMs: 10 }), INVALID)
  assert.throws(() => queue.process(async () => {}, { maxAttempts: 0 }), INVALID)
  assert.throws(() => queue.process(async () => {}, { maxDeliveries: NaN }), INVALID)
  assert.throws(() => queue.process(async () => {}, { concurrency: '10' }), INVALID)
})

test('unknown option keys are refused with a hint, not ignored', async (t) => {
  const queue = new ReliableQueue(uniqueName('keys'), { url: 'redis://127.0.0.1:1' })
  t.after(() => queue.close())
  const hint = (re) => ({ ...INVALID, name: 'TypeError', message: re })
  await assert.rejects(queue.add(1, { delay: 1000 }), hint(/unknown add options key 'delay'; did you mean 'delayMs'\?/))
  await assert.rejects(queue.add(1, { attempts: 5 }), hint(/did you mean 'maxAttempts'/))
  await assert.rejects(queue.add(1, { priority: 1 }), hint(/'priority' \(job priorities are not supported yet/))
  await assert.rejects(queue.add(1, { jobid: 'x' }), hint(/did you mean 'jobId'/))
  await assert.rejects(queue.add(1, { backoff: { type: 'fixed', delay: 10 } }), hint(/backoff key 'delay'; did you mean 'delayMs'/))
  await assert.rejects(queue.addBulk([1], { jobId: 'x' }), hint(/addBulk options key 'jobId'; did you mean 'jobIds'/))
  await assert.rejects(queue.dead.list({ limt: 5 }), hint(/did you mean 'limit'/))
  assert.throws(() => queue.process(async () => {}, { concurrancy: 5 }), hint(/did you mean 'concurrency'/))
  assert.throws(() => queue.process(async () => {}, { lockDuration: 5000 }), hint(/did you mean 'visibilityTimeoutMs'/))
  assert.throws(() => queue.process(async () => {}, { backoff: { type: 'fixed', delayMs: 1, maxDelay: 5 } }), hint(/did you mean 'maxDelayMs'/))
  assert.throws(() => new ReliableQueue('q', { connection: { host: 'x' } }), hint(/queue options key 'connection'; did you mean 'url'/))
  assert.throws(() => new ReliableQueue('q', { deadLetter: { count: 5 } }), hint(/did you mean 'maxLen'/))
  assert.throws(() => new ReliableQueue('q', { redisOptions: {} }), hint(/unknown queue options key 'redisOptions' \(known: url, tls, /))
})

for (const mode of MODES) {
  test(`[${mode}] a key of the wrong type at the queue key gives ERR_HOLDFAST_WRONG_TYPE and the worker reports it`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('wrongtype')
    const taken = key(name, mode === 'stream' ? 'stream' : 'wait')
    await redis.client.set(taken, 'someone else')
    const queue = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => queue.close())
    await assert.rejects(queue.add(1), (e) => {
      assert.equal(e.code, 'ERR_HOLDFAST_WRONG_TYPE')
      assert.ok(e.message.includes(taken), e.message)
      return true
    })
    await assert.rejects(queue.addBulk([1, 2]), { code: 'ERR_HOLDFAST_WRONG_TYPE' })
    await assert.rejects(queue.stats(), { code: 'ERR_HOLDFAST_WRONG_TYPE' })
    const worker = queue.process(async () => {})
    const err = await new Promise((resolve) => worker.once('error', resolve))
    assert.equal(err.code, 'ERR_HOLDFAST_WRONG_TYPE')
    await worker.close()
    assert.equal(await redis.client.get(taken), 'someone else', 'the foreign key is untouched')
  })
}
