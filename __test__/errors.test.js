'use strict'
// Errors that say what happened: credentials refused (ERR_HOLDFAST_AUTH), Redis out of memory
// (ERR_HOLDFAST_REDIS_FULL), bounded messages, and `instanceof HoldfastError` for every code.
const test = require('node:test')
const assert = require('node:assert/strict')
const { createClient } = require('redis')
const { ReliableQueue, HoldfastError } = require('..')
const { RedisServer } = require('../scripts/redis-server')
const { uniqueName, waitFor, MODES } = require('./helpers/redis-server')

test('refused credentials give ERR_HOLDFAST_AUTH, without the password; the right ones work', async (t) => {
  const server = await RedisServer.start({ args: ['--requirepass', 's3cret-pw'] })
  t.after(() => server.close())
  const port = server.port
  for (const mode of MODES) {
    for (const url of [`redis://127.0.0.1:${port}`, `redis://:wrong-pw@127.0.0.1:${port}`, `redis://nobody:wrong-pw@127.0.0.1:${port}`]) {
      const queue = new ReliableQueue(uniqueName('auth'), { url, mode })
      const err = await queue.add({ a: 1 }).then(() => null, (e) => e)
      assert.equal(err?.code, 'ERR_HOLDFAST_AUTH', `${mode} ${url}: ${err?.message}`)
      assert.ok(err instanceof HoldfastError)
      assert.match(err.message, /refused the credentials/)
      assert.doesNotMatch(err.message, /wrong-pw|s3cret-pw/)
      const worker = queue.process(async () => {})
      const codes = []
      worker.on('error', (e) => codes.push(e.code))
      await waitFor(() => codes.length > 0, 10_000, 'a worker error')
      assert.equal(codes[0], 'ERR_HOLDFAST_AUTH')
      await worker.close().catch(() => {})
      await queue.close().catch(() => {})
    }
    const queue = new ReliableQueue(uniqueName('auth-ok'), { url: `redis://:s3cret-pw@127.0.0.1:${port}`, mode })
    assert.ok(await queue.add({ a: 1 }))
    await queue.close()
  }
})

test('a full Redis gives ERR_HOLDFAST_REDIS_FULL with a short message; adds work once memory is freed', async (t) => {
  const server = await RedisServer.start({ args: ['--maxmemory', '4mb', '--maxmemory-policy', 'noeviction'] })
  t.after(() => server.close())
  const admin = createClient({ url: server.url })
  admin.on('error', () => {})
  await admin.connect()
  t.after(() => admin.destroy())
  for (const mode of MODES) {
    const queue = new ReliableQueue(uniqueName('full'), { url: server.url, mode })
    const items = Array.from({ length: 500 }, (_, i) => ({ i, pad: 'x'.repeat(1000) }))
    let err = null
    for (let round = 0; round < 100 && !err; round++) err = await queue.addBulk(items).then(() => null, (e) => e)
    assert.equal(err?.code, 'ERR_HOLDFAST_REDIS_FULL', err?.message)
    assert.ok(err instanceof HoldfastError)
    assert.ok(err.message.length < 700, `a ${err.message.length}-character message`)
    assert.match(err.message, /out of memory/)
    // what is left below maxmemory still takes a few single adds; then they are refused too
    let single = null
    for (let i = 0; i < 10_000 && !single; i++) single = await queue.add({ pad: 'x'.repeat(1000) }).then(() => null, (e) => e)
    assert.equal(single?.code, 'ERR_HOLDFAST_REDIS_FULL', single?.message)
    await admin.flushAll()
    assert.ok(await queue.add({ one: 1 }))
    await queue.close()
    await admin.flushAll()
  }
})

test('bad arguments are TypeErrors and HoldfastErrors at once', async () => {
  const queue = new ReliableQueue(uniqueName('types'), { url: 'redis://127.0.0.1:1' })
  const err = await queue.add(undefined).then(() => null, (e) => e)
  assert.ok(err instanceof TypeError && err instanceof HoldfastError, String(err))
  assert.equal(err.code, 'ERR_HOLDFAST_INVALID_PAYLOAD')
  const bad = (() => { try { queue.process(42) } catch (e) { return e } })()
  assert.ok(bad instanceof TypeError && bad instanceof HoldfastError)
  assert.equal(new Error('x') instanceof HoldfastError, false)
  await queue.close()
})
