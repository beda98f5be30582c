'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, MODES, key } = require('./helpers/redis-server')
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
