'use strict'
// Idle costs nothing measurable: idle workers rest (a heartbeat per 5 s, a blocking read per
// blockMs) and hear of new delayed jobs, retries and pauses on their queue's channel instead of
// polling for them. Counted in Redis's own INFO commandstats, those run by scripts included.
const test = require('node:test')
const assert = require('node:assert/strict')
const { createClient } = require('redis')
const { ReliableQueue } = require('..')
const { RedisServer } = require('../scripts/redis-server')
const { uniqueName, waitFor, MODES } = require('./helpers/redis-server')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function commandCalls(admin) {
  const info = await admin.sendCommand(['INFO', 'commandstats'])
  const calls = {}
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[m[1]] = Number(m[2])
  for (const own of ['info', 'config|resetstat']) delete calls[own]
  return calls
}

test('idle workers rest: a few commands per queue per second, woken by delays, retries and pauses', async (t) => {
  const server = await RedisServer.start()
  const admin = createClient({ url: server.url })
  admin.on('error', () => {})
  await admin.connect()
  const queues = []
  t.after(async () => {
    await Promise.all(queues.map((q) => q.close()))
    admin.destroy()
    await server.close()
  })
  const PER_MODE = 5
  const done = []
  const errors = []
  for (const mode of MODES) {
    for (let i = 0; i < PER_MODE; i++) {
      const queue = new ReliableQueue(uniqueName(`idle-${mode}`), { url: server.url, mode })
      queue.testMode = mode
      queues.push(queue)
      const worker = queue.process(async (job) => {
        if (job.data.failOnce && job.attempt === 1) throw new Error('once')
        done.push(`${queue.name} ${job.data.n}`)
      })
      worker.on('error', (e) => errors.push(`${e.code} ${e.message}`))
    }
  }
  // the first heartbeats are at the busy rhythm; the workers rest from the second
  await sleep(7000)
  await admin.sendCommand(['CONFIG', 'RESETSTAT'])
  const window = 10_000
  await sleep(window)
  const calls = await commandCalls(admin)
  const total = Object.values(calls).reduce((a, b) => a + b, 0)
  const perQueue = total / (window / 1000) / queues.length
  // ~1.5 resting; ~120 when every worker polled its delayed jobs every 25 ms
  assert.ok(perQueue <= 3, `${perQueue.toFixed(2)} commands/s per idle queue: ${JSON.stringify(calls)}`)

  // Resting workers are woken, by another queue object, of: a delayed job due in 300 ms (the
  // fallback look comes only every 30 s), a retry waiting out its backoff, and a pause.
  const others = queues.map((q) => new ReliableQueue(q.name, { url: server.url, mode: q.testMode }))
  t.after(() => Promise.all(others.map((q) => q.close())))
  const started = Date.now()
  for (const o of others) {
    await o.add({ n: 'delayed' }, { delayMs: 300 })
    await o.add({ n: 'retried', failOnce: true }, { backoff: { type: 'fixed', delayMs: 300 } })
  }
  await waitFor(() => done.length === 2 * queues.length, 10_000, 'every delayed job and retry ran')
  assert.ok(Date.now() - started < 10_000)

  await sleep(7000) // resting again
  await Promise.all(others.map((o) => o.pause()))
  await sleep(2000)
  for (const o of others) await o.add({ n: 'while paused' })
  await sleep(1000)
  assert.equal(done.length, 2 * queues.length, 'a paused worker took a job')
  await Promise.all(others.map((o) => o.resume()))
  await waitFor(() => done.length === 3 * queues.length, 10_000, 'ran after resume')
  assert.deepEqual(errors, [])
})
