'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, MODES } = require('./helpers/redis-server')
const { startFixture } = require('./helpers/child')

for (const mode of MODES) {
  test(`[${mode}] a worker process SIGKILLed mid-batch loses no job: another worker runs every unacked one`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('crash')
    const queue = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => queue.close())
    const total = 600
    const ids = await queue.addBulk(Array.from({ length: total }, (_, i) => ({ i })))

    const timeoutMs = 1000
    const child = startFixture('worker.js', {
      HF_URL: redis.url,
      HF_QUEUE: name,
      HF_MODE: mode,
      HF_CONCURRENCY: '50',
      HF_VISIBILITY_MS: String(timeoutMs),
    })
    await child.waitLine((m) => m.ready)
    await waitFor(() => child.lines.filter((m) => m.done).length >= 100, 20_000, 'child progress')
    child.proc.kill('SIGKILL')
    const { signal } = await child.exited
    const killedAt = Date.now()
    assert.equal(signal, 'SIGKILL')
    const doneByChild = new Set(child.lines.filter((m) => m.done).map((m) => m.done))
    assert.ok(doneByChild.size < total, 'the kill landed mid-run')

    const doneHere = new Set()
    const stalled = new Set()
    const worker = queue.process(async (job) => {
      doneHere.add(job.id)
    }, { concurrency: 100, visibilityTimeoutMs: timeoutMs })
    let firstStalledAt = null
    worker.on('stalled', (id) => {
      firstStalledAt ??= Date.now()
      stalled.add(id)
    })
    const lost = () => ids.filter((id) => !doneByChild.has(id) && !doneHere.has(id))
    await waitFor(() => lost().length === 0, 30_000, 'every job to run')
    // a hang guard, not a timing assertion: recovery is due within ~1.25x the timeout
    await waitFor(() => stalled.size > 0, 20 * timeoutMs, 'the dead worker\'s jobs to be recovered')
    await waitFor(async () => (await queue.stats()).active === 0, 10_000, 'nothing active')
    await worker.close()
    assert.deepEqual(lost(), [])
    for (const id of stalled) assert.ok(doneHere.has(id), `recovered job ${id} ran here`)
    const stats = await queue.stats()
    assert.equal(stats.waiting, 0)
    assert.equal(stats.active, 0)
    assert.equal(stats.dead, 0)
    t.diagnostic(`${mode}: ${stalled.size} jobs recovered ${firstStalledAt - killedAt} ms after the kill (timeout ${timeoutMs} ms)`)
  })
}

// The default lease is short (3 s) because Rust renews it, not the event loop: a crashed
// worker's jobs come back in seconds, while a long handler on a live worker keeps its job.
for (const mode of MODES) {
  test(`[${mode}] default options: the jobs a SIGKILLed worker held, running and prefetched, start on another worker within seconds`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('crash-default')
    const queue = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => queue.close())
    const child = startFixture('worker.js', {
      HF_URL: redis.url,
      HF_QUEUE: name,
      HF_MODE: mode,
      HF_BEHAVIOUR: 'hold',
      HF_CONCURRENCY: '4',
      HF_VISIBILITY_MS: 'default',
    })
    t.after(() => child.proc.kill('SIGKILL'))
    await child.waitLine((m) => m.ready)
    const ids = await queue.addBulk(Array.from({ length: 8 }, (_, i) => ({ i })))
    // 4 run (and never finish), 4 wait prefetched: prefetch starts at `concurrency`
    await waitFor(() => child.lines.filter((m) => m.started).length === 4, 20_000, 'the child to start 4 jobs')
    await waitFor(async () => {
      const s = await queue.stats()
      return s.active === 8 && s.waiting === 0
    }, 20_000, 'the child to hold all 8 jobs')

    // another worker of the fleet, running well before the crash
    const startedAt = new Map()
    const stalled = new Set()
    const worker = queue.process(async (job) => {
      if (!startedAt.has(job.id)) startedAt.set(job.id, Date.now())
    }, { concurrency: 8 })
    worker.on('stalled', (id) => stalled.add(id))
    await new Promise((r) => setTimeout(r, 3000))
    assert.equal(startedAt.size, 0, 'nothing was free to take before the crash')

    child.proc.kill('SIGKILL')
    await child.exited
    const killedAt = Date.now()
    await waitFor(() => startedAt.size === ids.length, 60_000, 'every held job to start here')
    const delays = ids.map((id) => startedAt.get(id) - killedAt)
    const slowest = Math.max(...delays)
    t.diagnostic(`${mode}: the 8 held jobs (4 running, 4 prefetched) started here ${Math.min(...delays)}..${slowest} ms after the SIGKILL (default options)`)
    // generous: the design gives ~3-3.75 s; BullMQ's defaults give 30-60 s
    assert.ok(slowest < 15_000, `recovery took ${slowest} ms`)
    assert.deepEqual([...stalled].sort(), [...ids].sort(), 'each reported as stalled')
    await waitFor(async () => (await queue.stats()).active === 0, 10_000, 'nothing active')
    await worker.close()
    const stats = await queue.stats()
    assert.deepEqual([stats.waiting, stats.active, stats.dead], [0, 0, 0])
  })

  test(`[${mode}] default options: a handler that runs for several leases on a live worker is never redelivered`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('long-default')
    const producer = new ReliableQueue(name, { url: redis.url, mode })
    const other = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => Promise.all([producer.close(), other.close()]))
    const runs = []
    const events = []
    const slowHandler = (who) => async (job) => {
      runs.push([who, job.id])
      await new Promise((r) => setTimeout(r, 10_000))
    }
    // two live workers: whichever takes the job holds it for 10 s (3+ leases); the other is
    // ready to recover it the moment its lease looks expired
    const workers = [producer.process(slowHandler('a'), { concurrency: 1 }), other.process(slowHandler('b'), { concurrency: 1 })]
    for (const w of workers) {
      w.on('stalled', (id) => events.push(['stalled', id]))
      w.on('dead', (job) => events.push(['dead', job.id]))
    }
    const done = new Promise((resolve) => workers.forEach((w) => w.on('completed', resolve)))
    const id = await producer.add({ long: true })
    await done
    await waitFor(async () => (await producer.stats()).active === 0, 10_000, 'the ack')
    await new Promise((r) => setTimeout(r, 500))
    assert.equal(runs.length, 1, `ran once: ${JSON.stringify(runs)}`)
    assert.equal(runs[0][1], id)
    assert.deepEqual(events, [])
    await Promise.all([producer.close(), other.close()])
  })
}
