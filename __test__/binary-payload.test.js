'use strict'
// A Buffer or Uint8Array as the whole payload travels as raw bytes: stored as they are (no
// base64, no JSON), delivered as a Buffer, and kept as bytes through retries, the dead letters
// and dead.retry. Payloads JSON would silently change are refused.
const test = require('node:test')
const assert = require('node:assert/strict')
const { RESP_TYPES } = require('redis')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, MODES, key } = require('./helpers/redis-server')

// not UTF-8 anywhere: NUL, lone continuation bytes, a truncated sequence, CRLF and '|'
const BYTES = Buffer.from([0x80, 0xff, 0x00, 0x7c, 0x0d, 0x0a, 0xc3, 0x00, 0xfe])

/** Every stored value of the queue's keys, as bytes: where the payload lives, whatever the mode. */
async function storedValues(client, name, mode) {
  const raw = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
  if (mode === 'list') return raw.lRange(key(name, 'wait'), 0, -1)
  const entries = await raw.xRange(key(name, 'stream'), '-', '+')
  return entries.map((e) => e.message.d)
}

for (const mode of MODES) {
  test(`[${mode}] a Buffer and a Uint8Array arrive as Buffers with every byte, stored raw`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('bytes')
    const queue = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => queue.close())

    const view = new Uint8Array([1, 2, 3, 0xff])
    const source = Buffer.from(BYTES)
    const ids = await Promise.all([queue.add(source), queue.add(view), queue.add({ json: true })])
    source.fill(0) // add took a copy: later writes do not change the job
    const bulk = await queue.addBulk([Buffer.from('bulk'), 'text', new Uint8Array(0)])

    const stored = await storedValues(redis.client, name, mode)
    const sizes = stored.map((v) => v.length)
    if (mode === 'stream') {
      // the d field holds exactly the bytes: no base64, no JSON quoting
      assert.deepEqual(sizes, [BYTES.length, 4, JSON.stringify({ json: true }).length, 4, 6, 0])
    } else {
      // each element ends with the bytes themselves
      assert.ok(stored.some((el) => el.subarray(el.length - BYTES.length).equals(BYTES)))
    }

    const got = new Map()
    const worker = queue.process(async (job) => {
      got.set(job.id, job.data)
    })
    await waitFor(() => got.size === 6, 10_000, 'six jobs')
    await worker.close()
    assert.ok(Buffer.isBuffer(got.get(ids[0])))
    assert.deepEqual(got.get(ids[0]), BYTES)
    assert.ok(Buffer.isBuffer(got.get(ids[1])))
    assert.deepEqual([...got.get(ids[1])], [1, 2, 3, 0xff])
    assert.deepEqual(got.get(ids[2]), { json: true })
    assert.deepEqual(got.get(bulk[0]), Buffer.from('bulk'))
    assert.equal(got.get(bulk[1]), 'text')
    assert.ok(Buffer.isBuffer(got.get(bulk[2])) && got.get(bulk[2]).length === 0)
  })

  test(`[${mode}] bytes stay bytes through a retry, the dead letters and dead.retry`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const queue = new ReliableQueue(uniqueName('bytes-dead'), { url: redis.url, mode })
    t.after(() => queue.close())
    const id = await queue.add(BYTES, { backoff: { type: 'fixed', delayMs: 20 } })

    const seen = []
    const dead = []
    let fail = true
    const worker = queue.process(async (job) => {
      seen.push([job.attempt, Buffer.isBuffer(job.data) && job.data.equals(BYTES)])
      if (fail) throw new Error('no')
    }, { maxAttempts: 2 })
    worker.on('dead', (jobId) => dead.push(jobId))
    await waitFor(() => dead.length === 1, 10_000, 'dead event')
    assert.deepEqual(seen, [[1, true], [2, true]])

    const [letter] = await queue.dead.list()
    assert.equal(letter.id, id)
    assert.ok(Buffer.isBuffer(letter.data))
    assert.deepEqual(letter.data, BYTES)

    fail = false
    assert.equal(await queue.dead.retry('all'), 1)
    await waitFor(() => seen.length === 3, 10_000, 'the retried job')
    assert.deepEqual(seen[2], [1, true])
    await worker.close()
  })
}

test('[list] bytes another producer LPUSHes arrive as a Buffer, byte for byte', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const listKey = `jobs:${uniqueName('raw')}`
  const queue = new ReliableQueue(uniqueName('bytes-raw'), { url: redis.url, mode: 'list', listKey })
  t.after(() => queue.close())
  await redis.client.lPush(listKey, [BYTES, '{"text":true}'])
  const got = []
  const worker = queue.process(async (job) => got.push(job.data))
  await waitFor(() => got.length === 2, 10_000, 'two jobs')
  await worker.close()
  assert.deepEqual(got, [BYTES, { text: true }])
})

test('bytes over maxPayloadBytes, and payloads JSON would change, are refused with a code', async (t) => {
  const queue = new ReliableQueue(uniqueName('bytes-bad'), { url: 'redis://127.0.0.1:1', maxPayloadBytes: 8 })
  t.after(() => queue.close())
  await assert.rejects(queue.add(Buffer.alloc(9)), { code: 'ERR_HOLDFAST_PAYLOAD_TOO_LARGE' })
  await assert.rejects(queue.addBulk([Buffer.alloc(1), Buffer.alloc(9)]), { code: 'ERR_HOLDFAST_PAYLOAD_TOO_LARGE' })
  for (const bad of [new Map([[1, 2]]), new Set([1]), new Float64Array(2), new ArrayBuffer(2), new DataView(new ArrayBuffer(2))]) {
    await assert.rejects(queue.add(bad), { code: 'ERR_HOLDFAST_INVALID_PAYLOAD', name: 'TypeError' }, bad.constructor.name)
  }
})
