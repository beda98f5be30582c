'use strict'
// One scheduler per queue at a time: many workers do not multiply the work of moving delayed
// jobs (one holds the queue's scheduler lease, the rest stand by), and the lease changes hands
// when its holder closes or dies. Calls are counted in Redis's own INFO commandstats.
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, key, MODES } = require('./helpers/redis-server')
const { startFixture } = require('./helpers/child')

// a server of its own (not REDIS_URL): the tests count its commands
async function withServer(t) {
  const redis = await useRedis({ restartable: true })
  t.after(() => redis.close())
  return { url: redis.url, admin: redis.client }
}

// Only promote.lua scans the delayed zset, and only when it holds the lease (or is a tool's).
async function scans(admin) {
  const info = await admin.sendCommand(['INFO', 'commandstats'])
  return Number((info.match(/^cmdstat_zrangebyscore:calls=(\d+)/m) || [])[1] || 0)
}

for (const mode of MODES) {
  test(`[${mode}] six workers schedule as one: each delayed job moves once, by one scheduler`, async (t) => {
    const { url, admin } = await withServer(t)
    const name = uniqueName('sched')
    const queue = new ReliableQueue(name, { url, mode })
    t.after(() => queue.close())
    const ran = []
    const workers = Array.from({ length: 6 }, () => queue.process(async (job) => { ran.push(job.data) }))
    t.after(() => Promise.all(workers.map((w) => w.close())))
    await waitFor(async () => (await queue.stats()).workers === 6, 10_000, 'six workers')
    await waitFor(async () => (await admin.get(key(name, 'scheduler'))) !== null, 10_000, 'a lease holder')

    const jobs = 60
    const before = await scans(admin)
    // due 50 ms apart: a scheduler per worker would wake for each, six times over
    await Promise.all(Array.from({ length: jobs }, (_, i) => queue.add(i, { delayMs: 200 + 50 * i })))
    await waitFor(() => ran.length >= jobs, 30_000, 'every delayed job')
    const used = (await scans(admin)) - before
    assert.deepEqual([...ran].sort((a, b) => a - b), Array.from({ length: jobs }, (_, i) => i), 'each job ran once')
    // one scheduler: about one scan per due time (a wake a little early may add one); six: ~6x
    assert.ok(used <= 3 * jobs, `${used} scans of the delayed zset for ${jobs} jobs due apart (six schedulers: ~${6 * jobs})`)
  })

  test(`[${mode}] a holder that closes hands the lease over at once`, async (t) => {
    const { url, admin } = await withServer(t)
    const name = uniqueName('sched-close')
    const queue = new ReliableQueue(name, { url, mode })
    t.after(() => queue.close())
    const ran = []
    // a long visibility timeout: a standby would otherwise look again only at the holder's
    // heartbeat deadline, up to 30 s away
    const workers = Array.from({ length: 3 }, () =>
      queue.process(async (job) => { ran.push(job.data) }, { visibilityTimeoutMs: 30_000 }))
    t.after(() => Promise.all(workers.map((w) => w.close())))
    const holderId = await waitFor(async () => {
      const id = await admin.get(key(name, 'scheduler'))
      return id && (await queue.stats()).workers === 3 ? id : null
    }, 10_000, 'a lease holder')
    const holder = workers.find((w) => w.id === holderId)
    assert.ok(holder, `the lease names a worker: ${holderId}`)
    await holder.close()
    const next = await waitFor(async () => {
      const id = await admin.get(key(name, 'scheduler'))
      return id && id !== holderId ? id : null
    }, 5_000, 'another worker takes the lease')
    assert.ok(workers.some((w) => w !== holder && w.id === next))
    await queue.add('after', { delayMs: 200 })
    await waitFor(() => ran.includes('after'), 5_000, 'a delayed job after the handover')
  })

  test(`[${mode}] a holder SIGKILLed: another worker takes over once its heartbeat lapses`, async (t) => {
    const { url, admin } = await withServer(t)
    const name = uniqueName('sched-kill')
    const queue = new ReliableQueue(name, { url, mode })
    t.after(() => queue.close())
    const children = Array.from({ length: 3 }, () => startFixture('worker.js', { HF_URL: url, HF_QUEUE: name, HF_MODE: mode }))
    t.after(() => children.forEach((c) => c.proc.kill('SIGKILL')))
    const ids = await Promise.all(children.map(async (c) => (await c.waitLine((m) => m.ready)).ready))
    const holderId = await waitFor(async () => {
      const id = await admin.get(key(name, 'scheduler'))
      return id && (await queue.stats()).workers === 3 ? id : null
    }, 10_000, 'a lease holder')
    const holder = children[ids.indexOf(holderId)]
    assert.ok(holder, `the lease names a child's worker: ${holderId}`)
    holder.proc.kill('SIGKILL')
    const added = await Promise.all(Array.from({ length: 20 }, (_, i) => queue.add(i, { delayMs: 100 + 10 * i })))
    const done = () => new Set(children.filter((c) => c !== holder).flatMap((c) => c.lines.filter((m) => m.done).map((m) => m.done)))
    // a resting holder's deadline is ~20 s away; a busy one's one visibility timeout (1 s here)
    await waitFor(() => added.every((id) => done().has(id)), 40_000, 'every delayed job, run by the survivors')
    const next = await admin.get(key(name, 'scheduler'))
    assert.ok(next && next !== holderId && ids.includes(next), `a survivor holds the lease: ${next}`)
  })
}
