'use strict'
// The failure model, in both modes: backoff through the delayed zset, delayed jobs, the
// scheduler race, dead letters, dedup, handler timeouts, pause/resume. No assertion on timing:
// delays are checked through the state in Redis and the values the events report.
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, MODES } = require('./helpers/redis-server')
const { startFixture } = require('./helpers/child')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

for (const mode of MODES) {
  test(`[${mode}] retries wait in the delayed zset for their backoff; per-job backoff and functions`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const queue = new ReliableQueue(uniqueName('backoff'), { url: redis.url, mode })
    t.after(() => queue.close())
    await queue.add('worker-backoff', { jobId: 'w' })
    await queue.add('job-backoff', { jobId: 'j', backoff: { type: 'fixed', delayMs: 150 } })
    const retrying = []
    const failed = []
    const runs = []
    const worker = queue.process(async (job) => {
      runs.push([job.id, job.attempt])
      if (job.attempt < 3) throw new Error(`no ${job.attempt}`)
    }, { maxAttempts: 3, backoff: { type: 'exponential', delayMs: 100, maxDelayMs: 150 } })
    worker.on('retrying', (job, err, delayMs) => retrying.push([job.id, job.attempt, delayMs, err.message]))
    worker.on('failed', (job, err, willRetry) => failed.push([job.id, job.attempt, willRetry]))
    await waitFor(() => retrying.length >= 1, 10_000, 'a first retry')
    const s = await queue.stats()
    assert.ok(s.delayed >= 1, `the retry waits in delayed: ${JSON.stringify(s)}`)
    await waitFor(() => runs.length === 6, 10_000, 'three attempts of both')
    await worker.close()
    const byJob = (id) => retrying.filter((r) => r[0] === id).map((r) => r[2])
    assert.deepEqual(byJob('w'), [100, 150], 'exponential 100, 200 capped at 150')
    assert.deepEqual(byJob('j'), [150, 150], 'the per-job fixed backoff wins')
    assert.deepEqual(failed.filter((f) => f[0] === 'w'), [['w', 1, true], ['w', 2, true]])
    const after = await queue.stats()
    assert.equal(after.delayed + after.waiting + after.active + after.dead, 0)

    // a backoff function gets (attempt, error); one that throws falls back to no delay
    await queue.add('fn', { jobId: 'f' })
    const seen = []
    const errors = []
    const w2 = queue.process(async (job) => {
      if (job.attempt < 3) throw new Error('fn fails')
    }, { maxAttempts: 3, backoff: (attempt, err) => { seen.push([attempt, err.message]); if (attempt === 2) throw new Error('bad backoff'); return 50 } })
    w2.on('error', (e) => errors.push(e.message))
    const done = []
    w2.on('completed', (job) => done.push(job.id))
    await waitFor(() => done.length === 1, 10_000, 'fn job done')
    await w2.close()
    assert.deepEqual(seen, [[1, 'fn fails'], [2, 'fn fails']])
    assert.deepEqual(errors, ['bad backoff'])
  })

  test(`[${mode}] a worker SIGKILLed while its job waits for a retry loses nothing`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('retry-crash')
    const queue = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => queue.close())
    const child = startFixture('worker.js', { HF_URL: redis.url, HF_QUEUE: name, HF_MODE: mode, HF_BEHAVIOUR: 'fail-once', HF_BACKOFF_MS: '1500' })
    t.after(() => child.proc.kill('SIGKILL'))
    await child.waitLine((m) => m.ready)
    const id = await queue.add({ pay: 1 })
    await child.waitLine((m) => m.retrying === id)
    await waitFor(async () => (await queue.stats()).delayed === 1, 5_000, 'the retry in delayed')
    child.proc.kill('SIGKILL')
    await child.exited
    const stats = await queue.stats()
    assert.equal(stats.delayed, 1, 'the retry outlives the worker: it is in Redis, not in memory')
    const runs = []
    const worker = queue.process(async (job) => { runs.push([job.id, job.attempt, job.data]) })
    await waitFor(() => runs.length === 1, 10_000, 'the retry to run elsewhere')
    await worker.close()
    assert.deepEqual(runs, [[id, 2, { pay: 1 }]])
  })

  test(`[${mode}] delayed jobs: delayMs and runAt wait in delayed, then run once`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const queue = new ReliableQueue(uniqueName('delay'), { url: redis.url, mode })
    t.after(() => queue.close())
    const runs = []
    const worker = queue.process(async (job) => { runs.push(job.data) })
    await queue.add('soon', { delayMs: 1500 })
    await queue.add('at', { runAt: new Date(Date.now() + 1500) })
    await queue.addBulk(['b1', 'b2'], { delayMs: 1500 })
    await queue.add('now', { delayMs: 0 })
    await waitFor(() => runs.includes('now'), 5_000, 'the undelayed job')
    const s = await queue.stats()
    assert.equal(s.delayed, 4, JSON.stringify(s))
    assert.deepEqual(runs, ['now'], 'delayed jobs do not run early')
    await waitFor(() => runs.length === 5, 10_000, 'delayed jobs')
    await worker.close()
    assert.deepEqual(runs.slice(1).sort(), ['at', 'b1', 'b2', 'soon'])
    assert.equal((await queue.stats()).delayed, 0)
  })

  test(`[${mode}] two workers' schedulers race over 300 due jobs: each moved and run once`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('sched-race')
    const producer = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => producer.close())
    const runAt = Date.now() + 800
    const ids = await producer.addBulk(Array.from({ length: 300 }, (_, i) => i), { runAt })
    const child = startFixture('worker.js', { HF_URL: redis.url, HF_QUEUE: name, HF_MODE: mode, HF_CONCURRENCY: '20' })
    t.after(() => child.proc.kill('SIGKILL'))
    await child.waitLine((m) => m.ready)
    const here = []
    const worker = producer.process(async (job) => { here.push(job.id) }, { concurrency: 20 })
    const doneThere = () => child.lines.filter((m) => m.done).map((m) => m.done)
    await waitFor(() => here.length + doneThere().length >= 300, 20_000, '300 runs')
    await sleep(300)
    await worker.close()
    const all = [...here, ...doneThere()]
    assert.equal(all.length, 300, 'no job ran twice')
    assert.deepEqual([...new Set(all)].sort(), [...ids].sort())
    t.diagnostic(`${mode}: ${here.length} ran here, ${doneThere().length} in the other process`)
  })

  test(`[${mode}] dead letters: list, retry by id and all, purge, capped by maxLen`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const queue = new ReliableQueue(uniqueName('deadmgmt'), { url: redis.url, mode, deadLetter: { maxLen: 5 } })
    t.after(() => queue.close())
    const ids = await queue.addBulk(Array.from({ length: 8 }, (_, i) => ({ n: i })), { maxAttempts: 1 })
    let fail = true
    const dead = []
    const ran = []
    const worker = queue.process(async (job) => {
      ran.push(job.id)
      if (fail) throw new Error(`bad ${job.data.n}`)
    })
    worker.on('dead', (id) => dead.push(id))
    await waitFor(() => dead.length === 8, 10_000, 'eight dead')
    const list = await queue.dead.list()
    assert.equal(list.length, 5, 'capped at maxLen')
    assert.equal((await queue.stats()).dead, 5)
    const item = list[0]
    assert.equal(typeof item.id, 'string')
    assert.match(item.error, /^bad \d$/)
    assert.equal(item.attempts, 1)
    assert.ok(item.failedAt instanceof Date && !Number.isNaN(item.failedAt.getTime()))
    assert.deepEqual(item.data, { n: Number(item.error.slice(4)) })
    assert.deepEqual((await queue.dead.list({ limit: 2, offset: 1 })).map((d) => d.id), list.slice(1, 3).map((d) => d.id))
    assert.ok(list.every((d) => ids.includes(d.id)))

    fail = false
    ran.length = 0
    assert.equal(await queue.dead.retry([list[0].id, 'no-such-id']), 1)
    await waitFor(() => ran.length === 1, 10_000, 'the retried job')
    assert.equal(ran[0], list[0].id, 'a retried dead letter keeps its id')
    assert.equal(await queue.dead.retry('all'), 4)
    await waitFor(() => ran.length === 5, 10_000, 'all retried')
    assert.equal((await queue.stats()).dead, 0)

    fail = true
    await queue.addBulk([1, 2], { maxAttempts: 1 })
    await waitFor(async () => (await queue.stats()).dead === 2, 10_000, 'two more dead')
    assert.equal(await queue.dead.purge(), 2)
    assert.equal((await queue.stats()).dead, 0)
    await worker.close()
    await assert.rejects(queue.dead.retry('some'), { code: 'ERR_HOLDFAST_INVALID_ARGUMENT' })
    await assert.rejects(queue.dead.list({ limit: -1 }), { code: 'ERR_HOLDFAST_INVALID_ARGUMENT' })
  })

  test(`[${mode}] dead letters older than deadLetter.maxAgeMs are dropped`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const queue = new ReliableQueue(uniqueName('deadage'), { url: redis.url, mode, deadLetter: { maxAgeMs: 300 } })
    t.after(() => queue.close())
    const dead = []
    const worker = queue.process(async () => { throw new Error('always') }, { maxAttempts: 1 })
    worker.on('dead', (id) => dead.push(id))
    await queue.add('old', { jobId: 'old' })
    await waitFor(() => dead.length === 1, 10_000, 'first dead letter')
    await sleep(600)
    await queue.add('new', { jobId: 'new' })
    await waitFor(() => dead.length === 2, 10_000, 'second dead letter')
    await worker.close()
    assert.deepEqual((await queue.dead.list()).map((d) => d.id), ['new'], 'the old one aged out when the new one was written')
  })

  test(`[${mode}] a jobId seen within the dedup window adds nothing: across producers and in addBulk`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('dedup')
    const a = new ReliableQueue(name, { url: redis.url, mode })
    const b = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => Promise.all([a.close(), b.close()]))
    // two producers race on the same ids
    const results = await Promise.all([
      ...Array.from({ length: 20 }, () => a.add({ from: 'a' }, { jobId: 'order-1' })),
      ...Array.from({ length: 20 }, () => b.add({ from: 'b' }, { jobId: 'order-1' })),
    ])
    assert.ok(results.every((id) => id === 'order-1'))
    assert.deepEqual(await a.addBulk(['x', 'y', 'z'], { jobIds: ['order-1', 'order-2', 'order-2'] }), ['order-1', 'order-2', 'order-2'])
    await a.add('delayed dup', { jobId: 'order-2', delayMs: 10 })
    const s = await a.stats()
    assert.equal(s.waiting + s.delayed, 2, `one job per id: ${JSON.stringify(s)}`)
    const runs = []
    const worker = a.process(async (job) => { runs.push([job.id, job.data]) })
    await waitFor(() => runs.length === 2, 10_000, 'two jobs')
    await sleep(200)
    await worker.close()
    assert.deepEqual(runs.map((r) => r[0]).sort(), ['order-1', 'order-2'])
    assert.deepEqual(runs.find((r) => r[0] === 'order-2')[1], 'y')
    // after the job ran, the id is still remembered for the window
    await a.add('again', { jobId: 'order-1' })
    assert.equal((await a.stats()).waiting, 0)
  })

  test(`[${mode}] handlerTimeoutMs aborts job.signal, frees the slot, and counts as a failure`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const queue = new ReliableQueue(uniqueName('timeout'), { url: redis.url, mode })
    t.after(() => queue.close())
    await queue.add('hangs', { jobId: 'hang' })
    await queue.add('quick', { jobId: 'quick' })
    const aborted = []
    const failed = []
    const completed = []
    const worker = queue.process(async (job) => {
      if (job.data === 'quick') return
      job.signal.addEventListener('abort', () => aborted.push([job.attempt, job.signal.reason.code]))
      if (job.attempt === 1) await new Promise(() => {}) // never settles
    }, { concurrency: 1, handlerTimeoutMs: 200, maxAttempts: 2 })
    worker.on('failed', (job, err, willRetry) => failed.push([job.id, err.code, err.message, willRetry]))
    worker.on('completed', (job) => completed.push(job.id))
    await waitFor(() => completed.length === 2, 10_000, 'both jobs')
    await worker.close()
    assert.deepEqual(failed, [['hang', 'ERR_HOLDFAST_HANDLER_TIMEOUT', 'handler timed out after 200 ms', true]])
    assert.deepEqual(aborted, [[1, 'ERR_HOLDFAST_HANDLER_TIMEOUT']])
    assert.deepEqual(completed.sort(), ['hang', 'quick'], 'the hung slot was freed: concurrency 1 still ran the rest')
  })

  test(`[${mode}] pause stops fetching in every worker, in every process, until resume`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('pause')
    const queue = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => queue.close())
    const child = startFixture('worker.js', { HF_URL: redis.url, HF_QUEUE: name, HF_MODE: mode })
    t.after(() => child.proc.kill('SIGKILL'))
    await child.waitLine((m) => m.ready)
    const here = []
    const worker = queue.process(async (job) => { here.push(job.id) })
    await queue.pause()
    assert.equal((await queue.stats()).paused, true)
    await sleep(1000) // a worker polls the flag every 0.2 s, then wakes its blocking read
    const ids = await queue.addBulk(Array.from({ length: 20 }, (_, i) => i))
    await sleep(800)
    const doneThere = () => child.lines.filter((m) => m.done).length
    assert.equal(here.length + doneThere(), 0, 'nothing ran while paused')
    assert.equal((await queue.stats()).waiting, 20)
    await queue.resume()
    assert.equal((await queue.stats()).paused, false)
    await waitFor(() => here.length + doneThere() === ids.length, 10_000, 'every job after resume')
    await worker.close()
  })

  test(`[${mode}] await pause() means it for this process's workers: a job added right after does not start`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('pause-now')
    const queue = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => queue.close())
    // another object for the same queue: pause() reaches the workers of both
    const other = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => other.close())
    const ran = []
    queue.process(async (job) => { ran.push(job.data) }, { blockMs: 5000 })
    other.process(async (job) => { ran.push(job.data) }, { blockMs: 5000 })
    for (let trial = 0; trial < 10; trial++) {
      await queue.add(`before-${trial}`)
      await waitFor(() => ran.includes(`before-${trial}`), 10_000, 'the job before the pause')
      await (trial % 2 ? other : queue).pause()
      await queue.add(`after-${trial}`)
      await sleep(300)
      assert.ok(!ran.includes(`after-${trial}`), `trial ${trial}: a job added after await pause() ran`)
      await queue.resume()
      await waitFor(() => ran.includes(`after-${trial}`), 10_000, 'the job after resume')
    }
  })
}
