'use strict'
// Fan-out: queues with different consumer groups on one stream each get every job, once per
// group; entries leave the stream when every group has finished them; retries, dead letters,
// pause and totals belong to one group.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { execFile } = require('node:child_process')
const { ReliableQueue, listQueues } = require('..')
const { useRedis, uniqueName, waitFor } = require('./helpers/redis-server')
const { startFixture } = require('./helpers/child')

const byGroup = (stats) => Object.fromEntries(stats.groups.map((g) => [g.name, g]))
// Redis 6.2 reports no group lag: `waiting` is null there
const lagKnown = async (client) => Number(/redis_version:(\d+)/.exec(await client.info('server'))[1]) >= 7

/** The `holdfast` command; resolves to { code, stdout, stderr }. */
function holdfast(...args) {
  const bin = path.join(__dirname, '..', 'bin', 'holdfast.js')
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env: { ...process.env, REDIS_URL: '' }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, stdout, stderr })
    })
  })
}

/** Waits until `n` consumer groups exist on the stream (a group is made by its first worker). */
function groupsMade(redis, streamKey, n, what) {
  return waitFor(async () => (await redis.client.xInfoGroups(streamKey).catch(() => [])).length === n, 10_000, what)
}

function gate() {
  let open
  const opened = new Promise((resolve) => {
    open = resolve
  })
  return { opened, open }
}

test('[stream] two groups at different speeds each get every job once; entries stay until both finished', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const name = uniqueName('fanout')
  const producer = new ReliableQueue(name, { url: redis.url })
  const billing = new ReliableQueue(name, { url: redis.url, group: 'billing' })
  const email = new ReliableQueue(name, { url: redis.url, group: 'email' })
  const slow = gate()
  t.after(() => {
    slow.open()
    return Promise.all([producer.close(), billing.close(), email.close()])
  })
  const streamKey = `holdfast:{${name}}:stream`

  const billed = []
  const mailed = []
  const bw = billing.process(async (job) => {
    billed.push(job.id)
  }, { concurrency: 4 })
  const ew = email.process(async (job) => {
    await slow.opened // email lags until billing is done with every job
    mailed.push(job.id)
  }, { concurrency: 2, prefetch: 2 })
  await groupsMade(redis, streamKey, 2, 'both groups')
  const ids = await producer.addBulk(Array.from({ length: 40 }, (_, i) => ({ order: i })))

  await waitFor(() => billed.length === 40, 10_000, 'billing ran every job')
  await waitFor(async () => (await billing.stats()).active === 0, 10_000, 'billing acked')
  await waitFor(async () => byGroup(await billing.stats()).email.active > 0, 10_000, 'email took some')
  // the lagging group holds every entry back: none has been finished by both groups
  const held = await billing.stats()
  const groups = byGroup(held)
  const lag = await lagKnown(redis.client)
  assert.deepEqual(Object.keys(groups).sort(), ['billing', 'email'], 'producer made no group of its own')
  assert.equal(groups.billing.waiting, lag ? 0 : null)
  assert.equal(groups.billing.active, 0)
  assert.equal(groups.billing.oldestWaitingMs, null)
  if (lag) assert.equal(groups.email.waiting + groups.email.active, 40, JSON.stringify(groups.email))
  else assert.equal(groups.email.waiting, null)
  assert.ok(groups.email.active >= 1 && groups.email.active <= 8, `email holds only its prefetch: ${groups.email.active}`)
  assert.ok(groups.email.oldestWaitingMs >= 0, 'email has jobs waiting')
  assert.equal(held.waiting, 0, "billing's own counts are billing's")
  const own = await email.stats()
  assert.equal(own.waiting + own.active, 40, "email's own counts are email's")
  // the trimmer runs with every ack batch and once a second: give it time, nothing may go
  await new Promise((r) => setTimeout(r, 1500))
  assert.equal(await redis.client.xLen(streamKey), 40)
  const metrics = await billing.metrics()
  assert.match(metrics, new RegExp(`holdfast_stream_group_jobs\\{queue="${name}",group="email",state="active"\\} [1-8]\n`))
  assert.match(metrics, new RegExp(`holdfast_jobs_completed_total\\{queue="${name}",group="billing"\\} 40`))

  slow.open()
  await waitFor(() => mailed.length === 40, 15_000, 'email ran every job')
  await waitFor(async () => (await redis.client.xLen(streamKey)) === 0, 10_000, 'finished by both: trimmed')
  await Promise.all([bw.close(), ew.close()])
  assert.deepEqual([...billed].sort(), [...ids].sort(), 'billing: each job once')
  assert.deepEqual([...mailed].sort(), [...ids].sort(), 'email: each job once')
  // each group's totals are its own
  await waitFor(async () => (await billing.stats()).completed === 40 && (await email.stats()).completed === 40, 10_000, 'totals')
  assert.equal((await producer.stats()).completed, 0, 'the default group ran nothing')
  const found = (await listQueues({ url: redis.url })).filter((q) => q.name === name)
  assert.deepEqual(found, [{ name, mode: 'stream' }])
})

test('[stream] retries and dead letters are per group: a retry runs again only in the group that failed', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const name = uniqueName('fanout-retry')
  // the default group beside a named one: their keys must not meet either
  const billing = new ReliableQueue(name, { url: redis.url })
  const email = new ReliableQueue(name, { url: redis.url, group: 'email' })
  t.after(() => Promise.all([billing.close(), email.close()]))
  const streamKey = `holdfast:{${name}}:stream`

  const billed = []
  const mailed = []
  let doomed = true
  const bw = billing.process(async (job) => {
    billed.push([job.data.n, job.attempt])
    if (job.data.n === 'doomed' ? doomed : job.attempt === 1) throw new Error(`fail ${job.data.n}`)
  }, { maxAttempts: 2, backoff: (attempt, err) => (err.message.endsWith('1') ? 50 : 0) }) // via `delayed`, and at once
  const dead = []
  bw.on('dead', (id) => dead.push(id))
  const ew = email.process(async (job) => {
    mailed.push([job.data.n, job.attempt])
  })
  await groupsMade(redis, streamKey, 2, 'both groups')
  const jobs = ['0', '1', '2', '3', 'doomed']
  const ids = await billing.addBulk(jobs.map((n) => ({ n })))

  await waitFor(() => dead.length === 1, 10_000, 'doomed in the dead letters')
  await waitFor(() => billed.length === 10, 10_000, 'billing: every job twice')
  await waitFor(async () => (await redis.client.xLen(streamKey)) === 0, 10_000, 'every entry, retries too, finished by both')
  const sorted = (runs) => runs.map((r) => r.join('@')).sort()
  assert.deepEqual(sorted(billed), sorted(jobs.flatMap((n) => [[n, 1], [n, 2]])))
  assert.deepEqual(sorted(mailed), sorted(jobs.map((n) => [n, 1])), "billing's retries never reach email")

  assert.deepEqual((await billing.dead.list()).map((l) => l.id), [ids[4]])
  assert.deepEqual(await email.dead.list(), [])
  assert.equal((await billing.stats()).dead, 1)
  assert.equal((await email.stats()).dead, 0)
  // the command line: each group's dead letters, and every group in `stats`
  const deadOf = async (...group) => JSON.parse((await holdfast('dead', 'list', name, ...group, '--url', redis.url, '--json')).stdout).map((l) => l.id)
  assert.deepEqual(await deadOf(), [ids[4]])
  assert.deepEqual(await deadOf('--group', 'email'), [])
  const text = await holdfast('stats', name, '--url', redis.url)
  assert.equal(text.code, 0, text.stderr)
  assert.match(text.stdout, /^GROUP +CONSUMERS +WAITING +ACTIVE +OLDEST$/m)
  assert.match(text.stdout, /^email +1 +\S+ +0 +-$/m)
  assert.match(text.stdout, /^workers +1 +\S+ +0 +-$/m)

  doomed = false
  assert.equal(await email.dead.retry('all'), 0, "email has no dead letters to retry")
  assert.equal(await billing.dead.retry('all'), 1)
  await waitFor(() => billed.length === 11, 10_000, 'the dead job runs again in billing')
  assert.deepEqual(billed[10], ['doomed', 1])
  await waitFor(async () => (await redis.client.xLen(streamKey)) === 0, 10_000, 'the re-added entry passed both groups')
  await Promise.all([bw.close(), ew.close()])
  assert.equal(mailed.length, 5, 'email did not run the dead job again')
})

test('[stream] a group added while jobs wait starts at the first waiting entry or at new ones; pause is per group', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const name = uniqueName('fanout-late')
  const streamKey = `holdfast:{${name}}:stream`
  const first = new ReliableQueue(name, { url: redis.url, group: 'first' })
  const earliest = new ReliableQueue(name, { url: redis.url, group: 'audit', groupStart: 'earliest' })
  const latest = new ReliableQueue(name, { url: redis.url, group: 'live', groupStart: 'latest' })
  const hold = gate()
  t.after(() => {
    hold.open() // a failed step must not leave a handler waiting forever
    return Promise.all([first.close(), earliest.close(), latest.close()])
  })

  const runs = { first: [], audit: [], live: [] }
  const fw = first.process(async (job) => {
    await hold.opened
    runs.first.push(job.data)
  })
  await groupsMade(redis, streamKey, 1, 'the first group')
  await first.addBulk(['a', 'b', 'c'])
  // 'first' holds them (its handler waits): they are still in the stream for the new groups
  const aw = earliest.process(async (job) => {
    runs.audit.push(job.data)
  })
  const lw = latest.process(async (job) => {
    runs.live.push(job.data)
  })
  await waitFor(() => runs.audit.length === 3, 10_000, 'audit got the waiting jobs')
  await groupsMade(redis, streamKey, 3, 'live joined')

  // pause one group: the others go on
  await latest.pause()
  await first.add('d')
  await waitFor(() => runs.audit.length === 4, 10_000, 'audit got d')
  const paused = await latest.stats()
  assert.equal(paused.paused, true)
  assert.equal((await earliest.stats()).paused, false)
  assert.equal(byGroup(paused).live.waiting, (await lagKnown(redis.client)) ? 1 : null, 'd waits for live')
  assert.deepEqual(runs.live, [])
  await latest.resume()
  await waitFor(() => runs.live.length === 1, 10_000, 'live got d after resume')

  hold.open()
  await waitFor(() => runs.first.length === 4, 10_000, 'first ran all')
  await waitFor(async () => (await redis.client.xLen(streamKey)) === 0, 10_000, 'trimmed')
  await Promise.all([fw.close(), aw.close(), lw.close()])
  assert.deepEqual(runs.first.sort(), ['a', 'b', 'c', 'd'])
  assert.deepEqual(runs.audit.sort(), ['a', 'b', 'c', 'd'], "earliest: the jobs waiting when it joined, then the new one")
  assert.deepEqual(runs.live, ['d'], 'latest: only the job added after it joined')
})

test('[stream] a worker process of one group SIGKILLed mid-run: its group recovers every job, the other group runs each once', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const name = uniqueName('fanout-kill')
  const streamKey = `holdfast:{${name}}:stream`
  const billing = new ReliableQueue(name, { url: redis.url, group: 'billing' })
  const email = new ReliableQueue(name, { url: redis.url, group: 'email' })
  t.after(() => Promise.all([billing.close(), email.close()]))
  const total = 300
  const timeoutMs = 1000
  const child = startFixture('worker.js', { HF_URL: redis.url, HF_QUEUE: name, HF_GROUP: 'billing', HF_CONCURRENCY: '20', HF_VISIBILITY_MS: String(timeoutMs) })
  t.after(() => child.proc.kill('SIGKILL'))
  await child.waitLine((m) => m.ready)
  const mailed = []
  const ew = email.process(async (job) => {
    mailed.push(job.id)
  }, { visibilityTimeoutMs: timeoutMs })
  await groupsMade(redis, streamKey, 2, 'both groups')
  const ids = await email.addBulk(Array.from({ length: total }, (_, i) => ({ i })))

  await waitFor(() => child.lines.filter((m) => m.done).length >= 50, 20_000, 'the billing child under way')
  child.proc.kill('SIGKILL')
  assert.equal((await child.exited).signal, 'SIGKILL')
  const doneByChild = new Set(child.lines.filter((m) => m.done).map((m) => m.done))
  assert.ok(doneByChild.size < total, 'the kill landed mid-run')

  const billedHere = new Set()
  const stalled = []
  const bw = billing.process(async (job) => {
    billedHere.add(job.id)
  }, { visibilityTimeoutMs: timeoutMs })
  bw.on('stalled', (id) => stalled.push(id))
  await waitFor(() => ids.every((id) => doneByChild.has(id) || billedHere.has(id)), 30_000, 'billing ran every job')
  await waitFor(() => mailed.length >= total, 20_000, 'email ran every job')
  await waitFor(async () => (await redis.client.xLen(streamKey)) === 0, 10_000, 'trimmed once both finished')
  await Promise.all([bw.close(), ew.close()])
  assert.ok(stalled.length > 0, "the killed worker's jobs came back as stalled")
  assert.deepEqual([...mailed].sort(), [...ids].sort(), 'email: each job once, undisturbed')
  const stats = await billing.stats()
  assert.equal(stats.dead, 0)
  assert.equal((await email.stats()).dead, 0)
})
