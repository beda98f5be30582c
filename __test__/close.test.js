'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, MODES, key } = require('./helpers/redis-server')
const { startFixture } = require('./helpers/child')

for (const mode of MODES) {
  test(`[${mode}] worker.close() waits for jobs in flight, acks them, and removes its heartbeat`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('close')
    const queue = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => queue.close())
    await queue.addBulk(Array.from({ length: 20 }, (_, i) => i))

    let started = 0
    let finished = 0
    let release
    const gate = new Promise((r) => (release = r))
    const worker = queue.process(async () => {
      started++
      await gate
      finished++
    }, { concurrency: 5 })
    while (started < 5) await new Promise((r) => setTimeout(r, 10))
    assert.equal((await queue.stats()).workers, 1)

    const closing = worker.close()
    setTimeout(release, 200)
    await closing
    assert.equal(finished, 5, 'close resolved only after the 5 in-flight handlers finished')
    assert.equal(started, 5, 'no job was fetched after close began')
    const stats = await queue.stats()
    assert.equal(stats.active, 0, 'their acks were flushed')
    assert.equal(stats.waiting, 15)
    assert.equal(stats.workers, 0)
    assert.deepEqual(await redis.client.zRange(key(name, 'workers'), 0, -1), [])
  })

  test(`[${mode}] after worker.close() and queue.close() the node process exits by itself`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const child = startFixture('run-and-exit.js', { HF_URL: redis.url, HF_QUEUE: uniqueName('exit'), HF_MODE: mode })
    const timer = setTimeout(() => child.proc.kill('SIGKILL'), 20_000)
    const { code, signal } = await child.exited
    clearTimeout(timer)
    assert.equal(signal, null, 'the process had to be killed: something kept it alive')
    assert.equal(code, 0)
    assert.deepEqual(child.lines, [{ done: 200 }])
  })

  test(`[${mode}] SIGTERM handled with queue.close() finishes in-flight work and exits`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('sigterm')
    const queue = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => queue.close())
    await queue.addBulk(Array.from({ length: 200 }, (_, i) => i))
    const child = startFixture('worker.js', { HF_URL: redis.url, HF_QUEUE: name, HF_MODE: mode, HF_CONCURRENCY: '10' })
    await child.waitLine((m) => m.done !== undefined)
    child.proc.kill('SIGTERM')
    const { code } = await child.exited
    assert.equal(code, 0)
    assert.ok(child.lines.some((m) => m.closed))
    const stats = await queue.stats()
    assert.equal(stats.active, 0, 'nothing left pending: in-flight jobs finished and were acked')
    assert.equal(stats.waiting, 200 - child.lines.filter((m) => m.done).length)
  })

  test(`[${mode}] every call after close() rejects with ERR_HOLDFAST_CLOSED`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const queue = new ReliableQueue(uniqueName('closed'), { url: redis.url, mode })
    await queue.close()
    await queue.close() // idempotent
    const closed = { code: 'ERR_HOLDFAST_CLOSED' }
    await assert.rejects(queue.add(1), closed)
    await assert.rejects(queue.addBulk([1]), closed)
    await assert.rejects(queue.stats(), closed)
    assert.throws(() => queue.process(async () => {}), closed)
  })
}

for (const mode of MODES) {
  test(`[${mode}] close({ timeoutMs }) stops waiting for a handler that never settles; its job runs again elsewhere`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('close-timeout')
    const stuck = new ReliableQueue(name, { url: redis.url, mode })
    const id = await stuck.add({ hang: true })
    let started = false
    const errors = []
    const worker = stuck.process(() => {
      started = true
      return new Promise(() => {}) // never settles
    })
    worker.on('error', (e) => errors.push(e))
    await waitFor(() => started, 10_000, 'the handler to start')
    const result = await stuck.close({ timeoutMs: 100 })
    assert.deepEqual(result, { timedOut: 1, leftToLeaseExpiry: 0 })
    assert.deepEqual(errors, [])

    // handed back at once, same attempt: another worker runs it without waiting for a lease
    const other = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => other.close())
    const runs = []
    other.process(async (job) => runs.push([job.id, job.attempt]), { visibilityTimeoutMs: 60_000 })
    await waitFor(() => runs.length === 1, 10_000, 'the job to run again')
    assert.deepEqual(runs, [[id, 1]])
    await assert.rejects(stuck.close({ timeoutMs: -1 }), { code: 'ERR_HOLDFAST_INVALID_ARGUMENT' })
  })

  test(`[${mode}] close() during a Redis outage resolves, reports errors, and counts jobs left to lease expiry`, async (t) => {
    const redis = await useRedis({ restartable: true })
    t.after(() => redis.close())
    const queue = new ReliableQueue(uniqueName('close-outage'), { url: redis.url, mode })
    await queue.addBulk([1, 2, 3])
    let release
    const gate = new Promise((r) => (release = r))
    let started = 0
    const worker = queue.process(async () => {
      started++
      await gate
    }, { concurrency: 3 })
    const codes = []
    worker.on('error', (e) => codes.push(e.code))
    await waitFor(() => started === 3, 10_000, 'three handlers')
    await redis.server.stop()
    release()
    const result = await queue.close()
    assert.deepEqual(result, { timedOut: 0, leftToLeaseExpiry: 3 })
    assert.ok(codes.length > 0 && codes.every((c) => c === 'ERR_HOLDFAST_CONNECTION'), codes.join())
  })
}
