'use strict'
// Server settings that lose jobs become a one-time 'warning': on the queue when it listens, on
// its workers when they do, else a process warning. An evicting maxmemory-policy (allkeys-lru:
// an evicted queue key is lost jobs) is the case here; crates/core/tests/server_warnings.rs
// covers noeviction, durable.fsync without AOF and an ACL user without +info.
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { RedisServer, uniqueName, waitFor } = require('./helpers/redis-server')

let server
test.before(async () => {
  server = await RedisServer.start({ args: ['--maxmemory-policy', 'allkeys-lru'] })
})
test.after(() => server?.close())

test('an evicting maxmemory-policy is a warning on the queue, once', async (t) => {
  const queue = new ReliableQueue(uniqueName('warn'), { url: server.url })
  t.after(() => queue.close())
  const warnings = []
  queue.on('warning', (w) => warnings.push(w))
  await queue.add(1)
  await queue.addBulk([2, 3])
  await queue.stats()
  await waitFor(() => warnings.length > 0, 10_000, 'a warning')
  await queue.stats() // the check is not repeated
  await new Promise((r) => setImmediate(r))
  assert.equal(warnings.length, 1)
  assert.ok(warnings[0] instanceof Error)
  assert.equal(warnings[0].name, 'HoldfastWarning')
  assert.equal(warnings[0].code, 'HOLDFAST_EVICTION')
  assert.match(warnings[0].message, /maxmemory-policy allkeys-lru.*lost jobs/)
})

test('a worker that listens hears it when the queue does not', async (t) => {
  const queue = new ReliableQueue(uniqueName('warn'), { url: server.url })
  t.after(() => queue.close())
  const worker = queue.process(async () => {})
  const warnings = []
  worker.on('warning', (w) => warnings.push(w))
  await waitFor(() => warnings.length > 0, 10_000, 'a warning on the worker')
  assert.equal(warnings[0].code, 'HOLDFAST_EVICTION')
})

test('with no listener it is a process warning', async (t) => {
  const heard = []
  const onWarning = (w) => heard.push(w)
  process.on('warning', onWarning)
  t.after(() => process.off('warning', onWarning))
  const queue = new ReliableQueue(uniqueName('warn'), { url: server.url })
  t.after(() => queue.close())
  await queue.add(1)
  await waitFor(() => heard.some((w) => w.name === 'HoldfastWarning'), 10_000, 'a process warning')
  assert.equal(heard.find((w) => w.name === 'HoldfastWarning').code, 'HOLDFAST_EVICTION')
})
