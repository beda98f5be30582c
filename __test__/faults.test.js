'use strict'
// The fault suite (FAULTS.md maps each guarantee to its test here). Each test runs a queue under
// load (4 producers adding numbered jobs, two workers on queue objects of their own), breaks
// something for a few seconds, and checks that no acknowledged job is lost and that the workers
// resume by themselves. Duplicates are allowed (at-least-once) and reported, with the time the
// workers took to run jobs again after the fault ended, as test diagnostics.
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, MODES } = require('./helpers/redis-server')
const { FaultyProxy } = require('./helpers/proxy')
const { startFixture } = require('./helpers/child')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Codes that a fault of the network or of Redis may produce; anything else fails the test. */
const FAULT_CODES = new Set(['ERR_HOLDFAST_CONNECTION', 'ERR_HOLDFAST_REDIS'])

/**
 * Runs `fault()` while the queue is under load. `fault` resolves when the fault is over, with
 * `{ lostBefore }` when Redis itself lost data (FLUSHALL, a restart without persistence): jobs
 * whose add *started* before that moment may be gone. Every other accepted job must run.
 * Times are `performance.now()`: with `Date.now()` an add started in the same millisecond as
 * the FLUSHALL reply arrived cannot be ordered against it (it may have run before the flush).
 */
async function underLoad(t, { url, workerUrls = [url, url], mode }, fault) {
  const name = uniqueName('fault')
  const producer = new ReliableQueue(name, { url, mode })
  const queues = workerUrls.map((u) => new ReliableQueue(name, { url: u, mode }))
  const ranAt = new Map() // n -> when it first ran
  const runs = new Map() // n -> how many times
  const accepted = new Map() // n -> when its add started
  const codes = new Map()
  const firstMessage = new Map()
  const count = (e) => {
    codes.set(e.code, (codes.get(e.code) || 0) + 1)
    if (!firstMessage.has(e.code)) firstMessage.set(e.code, String(e.message).slice(0, 160))
  }
  const handler = async (job) => {
    const { n } = job.data
    if (!ranAt.has(n)) ranAt.set(n, performance.now())
    runs.set(n, (runs.get(n) || 0) + 1)
    await sleep(n % 5)
  }
  const workers = queues.map((q) => q.process(handler, { concurrency: 20 }))
  for (const w of workers) w.on('error', count)
  let next = 0
  let producing = true
  let rejected = 0
  const produce = async () => {
    while (producing) {
      const n = next++
      const startedAt = performance.now()
      try {
        await producer.add({ n })
        accepted.set(n, startedAt)
      } catch (e) {
        // may still have been enqueued (the README says so): it may run, it need not
        count(e)
        rejected++
      }
      await sleep(2)
    }
  }
  const producers = [produce(), produce(), produce(), produce()]
  try {
    await waitFor(() => ranAt.size > 50, 20_000, 'load before the fault')
    const { lostBefore = 0 } = (await fault()) || {}
    const faultEnded = performance.now()
    await sleep(1500)
    producing = false
    await Promise.all(producers)
    const mustRun = [...accepted].filter(([, at]) => at >= lostBefore).map(([n]) => n)
    const after = [...accepted].filter(([, at]) => at >= faultEnded).map(([n]) => n)
    assert.ok(after.length > 0, 'no add succeeded after the fault ended')
    await waitFor(() => mustRun.every((n) => ranAt.has(n)), 60_000,
      `every acknowledged job to run (${mustRun.filter((n) => !ranAt.has(n)).length} missing)`)
    const resumedMs = Math.round(Math.min(...after.map((n) => ranAt.get(n))) - faultEnded)
    const duplicates = [...runs.values()].reduce((s, r) => s + r - 1, 0)
    const unexpected = [...codes.keys()].filter((c) => !FAULT_CODES.has(c))
    assert.deepEqual(unexpected, [], `unexpected errors: ${JSON.stringify([...firstMessage])}`)
    const report = {
      accepted: accepted.size, mustRun: mustRun.length, rejected, duplicates, resumedMs,
      errors: Object.fromEntries(codes), firstMessage: Object.fromEntries(firstMessage),
    }
    t.diagnostic(JSON.stringify(report))
    return report
  } finally {
    producing = false
    await Promise.all(producers)
    await Promise.all([producer, ...queues].map((q) => q.close({ timeoutMs: 5000 }).catch(() => {})))
  }
}

for (const mode of MODES) {
  test(`[${mode}] every link reset every 500 ms for 5 s: no acknowledged job lost, workers resume`, async (t) => {
    const redis = await useRedis()
    const proxy = await FaultyProxy.start(new URL(redis.url).port)
    t.after(async () => { await proxy.close(); await redis.close() })
    await underLoad(t, { url: proxy.url, mode }, async () => {
      for (let i = 0; i < 10; i++) {
        await sleep(500)
        proxy.reset()
      }
    })
    assert.ok(proxy.resets > 10, `only ${proxy.resets} links reset`)
  })

  test(`[${mode}] a 2 s network stall: no acknowledged job lost, workers resume`, async (t) => {
    const redis = await useRedis()
    const proxy = await FaultyProxy.start(new URL(redis.url).port)
    t.after(async () => { await proxy.close(); await redis.close() })
    await underLoad(t, { url: proxy.url, mode }, () => proxy.stall(2000))
  })

  test(`[${mode}] a 6 s stall that ends with every link reset (half-open links): nothing lost, workers resume`, async (t) => {
    const redis = await useRedis()
    const proxy = await FaultyProxy.start(new URL(redis.url).port)
    t.after(async () => { await proxy.close(); await redis.close() })
    await underLoad(t, { url: proxy.url, mode }, () => proxy.stall(6000, { thenReset: true }))
  })

  test(`[${mode}] one worker cut off for 5 s (longer than its 3 s leases): its jobs run on the other, nothing lost`, async (t) => {
    const redis = await useRedis()
    const proxy = await FaultyProxy.start(new URL(redis.url).port)
    t.after(async () => { await proxy.close(); await redis.close() })
    const report = await underLoad(t, { url: redis.url, workerUrls: [redis.url, proxy.url], mode },
      () => proxy.stall(5000))
    // the cut-off worker's handlers finished, and it acked them late: duplicates are allowed
    t.diagnostic(`duplicates after a partition: ${report.duplicates}`)
  })

  test(`[${mode}] CLIENT KILL storm (every client, every 200 ms, 5 s): nothing lost, workers resume`, async (t) => {
    const redis = await useRedis({ restartable: true })
    t.after(() => redis.close())
    let killed = 0
    await underLoad(t, { url: redis.url, mode }, async () => {
      for (let i = 0; i < 25; i++) {
        killed += await redis.client.sendCommand(['CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes'])
        await sleep(200)
      }
    })
    assert.ok(killed > 25, `only ${killed} clients killed`)
  })

  test(`[${mode}] FLUSHALL mid-run: every job added after it runs, workers resume`, async (t) => {
    const redis = await useRedis({ restartable: true })
    t.after(() => redis.close())
    await underLoad(t, { url: redis.url, mode }, async () => {
      await redis.client.flushAll()
      return { lostBefore: performance.now() }
    })
  })

  test(`[${mode}] Redis restarted empty mid-run: every job added after it runs, workers resume`, async (t) => {
    const redis = await useRedis({ restartable: true })
    t.after(() => redis.close())
    await underLoad(t, { url: redis.url, mode }, async () => {
      await redis.server.stop()
      await sleep(1000)
      await redis.server.restart()
      return { lostBefore: performance.now() }
    })
  })

  test(`[${mode}] worker processes SIGKILLed every 1.5 s for 12 s under load (default options): nothing lost`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('chaos')
    const producer = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => producer.close())
    const env = { HF_URL: redis.url, HF_QUEUE: name, HF_MODE: mode, HF_CONCURRENCY: '10', HF_VISIBILITY_MS: 'default' }
    const children = []
    const spawnWorker = async () => {
      const child = startFixture('worker.js', env)
      children.push(child)
      await child.waitLine((m) => m.ready)
      return child
    }
    t.after(() => Promise.all(children.map((c) => c.stop('SIGKILL'))))
    const live = [await spawnWorker(), await spawnWorker()]
    const accepted = new Set()
    let producing = true
    const produce = async () => {
      for (let n = 0; producing; n++) {
        accepted.add(await producer.add({ n }))
        await sleep(5)
      }
    }
    const producing1 = produce()
    let kills = 0
    const until = Date.now() + 12_000
    while (Date.now() < until) {
      await sleep(1500)
      const victim = live.shift()
      victim.proc.kill('SIGKILL')
      await victim.exited
      kills++
      live.push(await spawnWorker())
    }
    producing = false
    await producing1
    const done = () => new Set(children.flatMap((c) => c.lines.filter((m) => m.done).map((m) => m.done)))
    await waitFor(() => [...accepted].every((id) => done().has(id)), 60_000,
      `every accepted job to run (${[...accepted].filter((id) => !done().has(id)).length} missing)`)
    const runs = children.flatMap((c) => c.lines.filter((m) => m.done)).length
    t.diagnostic(JSON.stringify({ accepted: accepted.size, kills, duplicates: runs - done().size }))
  })

  test(`[${mode}] a full Redis: add rejects with ERR_HOLDFAST_REDIS_FULL, a worker drains it, adds work again`, async (t) => {
    const redis = await useRedis({ restartable: true })
    t.after(() => redis.close())
    const name = uniqueName('full')
    const queue = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => queue.close())
    const used = Number(/used_memory:(\d+)/.exec(await redis.client.info('memory'))[1])
    // one pair per CONFIG SET: Redis 6.2 takes no more
    await redis.client.configSet('maxmemory-policy', 'noeviction')
    await redis.client.configSet('maxmemory', String(used + (4 << 20)))
    const pad = 'x'.repeat(1000)
    let accepted = 0
    let full = null
    for (const size of [100, 1]) {
      for (;;) {
        const items = Array.from({ length: size }, (_, i) => ({ n: accepted + i, pad }))
        const err = await queue.addBulk(items).then(() => null, (e) => e)
        if (err) { full = err; break }
        accepted += size
        assert.ok(accepted < 100_000, 'Redis never filled up')
      }
      assert.equal(full.code, 'ERR_HOLDFAST_REDIS_FULL', full.message)
      assert.ok(full.message.length < 400, full.message)
    }

    const ran = new Set()
    const errors = []
    const worker = queue.process(async (job) => { ran.add(job.data.n) }, { concurrency: 50 })
    worker.on('error', (e) => errors.push(e.code))
    await waitFor(() => ran.size === accepted, 60_000, `all ${accepted} jobs to run`)
    await waitFor(() => queue.add({ n: -1 }).then(() => true, () => false), 20_000, 'an add to work again')
    await waitFor(() => ran.has(-1), 10_000, 'the job added after')
    await worker.close()
    assert.deepEqual(errors, [], 'the worker reported errors on a full Redis')
    t.diagnostic(JSON.stringify({ accepted }))
  })
}
