'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, MODES, key, keysOf } = require('./helpers/redis-server')

for (const mode of MODES) {
  test(`[${mode}] 10k jobs, added singly and in bulk, each run exactly once; nothing stays in Redis`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('once')
    const queue = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => queue.close())

    const singles = await Promise.all(Array.from({ length: 2000 }, (_, i) => queue.add({ n: i })))
    const bulk = await queue.addBulk(Array.from({ length: 8000 }, (_, i) => ({ n: 2000 + i })))
    const ids = [...singles, ...bulk]
    assert.equal(new Set(ids).size, 10_000, 'every add returns a distinct id')

    const seen = new Map()
    let completed = 0
    const worker = queue.process(async (job) => {
      assert.equal(job.attempt, 1)
      seen.set(job.data.n, (seen.get(job.data.n) ?? 0) + 1)
      return job.data
    }, { concurrency: 100 })
    worker.on('completed', () => completed++)
    const errors = []
    worker.on('error', (e) => errors.push(e))

    await waitFor(() => completed === 10_000, 60_000, '10k completions')
    await worker.close()
    assert.deepEqual(errors, [])
    assert.equal(seen.size, 10_000)
    for (const [n, count] of seen) assert.equal(count, 1, `job ${n} ran ${count} times`)

    const stats = await queue.stats()
    // stream mode: its one group, nothing left in it; waiting is null only where Redis reports no lag (6.2)
    const groups = mode === 'stream' ? [{ name: 'workers', consumers: 0, active: 0, waiting: stats.groups[0]?.waiting === null ? null : 0, oldestWaitingMs: null }] : []
    assert.deepEqual(stats, { waiting: 0, active: 0, delayed: 0, dead: 0, workers: 0, paused: false, oldestWaitingMs: null, completed: 10_000, failed: 0, groups })
    if (mode === 'stream') {
      // finished entries are trimmed away, not kept; the stream itself stays, empty
      assert.equal(await redis.client.xLen(key(name, 'stream')), 0)
      assert.deepEqual(await keysOf(redis.client, name), [key(name, 'stream')])
    } else {
      assert.deepEqual(await keysOf(redis.client, name), [], 'no wait, processing or heartbeat key left')
    }
  })

  test(`[${mode}] job fields: id, data, attempt, jobId, plain handler results`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const queue = new ReliableQueue(uniqueName('fields'), { url: redis.url, mode })
    t.after(() => queue.close())

    const id = await queue.add({ to: 'a@b.c', tags: ['x'], n: 1.5, ok: true, none: null }, { jobId: 'email-1' })
    assert.equal(id, 'email-1')
    const stringId = await queue.add('just a string')
    await queue.add(42)
    const got = []
    const worker = queue.process((job) => {
      got.push({ id: job.id, data: job.data, attempt: job.attempt, aborted: job.signal.aborted })
      // plain (non-async) handler returning a non-Promise value
      return 'sync result'
    })
    await waitFor(() => got.length === 3, 10_000, 'three jobs')
    await worker.close()
    got.sort((a, b) => String(a.data).localeCompare(String(b.data)))
    const email = got.find((g) => g.id === 'email-1')
    assert.deepEqual(email, {
      id: 'email-1',
      data: { to: 'a@b.c', tags: ['x'], n: 1.5, ok: true, none: null },
      attempt: 1,
      aborted: false,
    })
    assert.equal(got.find((g) => g.data === 'just a string').id, stringId, 'job.id is what add returned')
    assert.ok(got.some((g) => g.data === 42))
    assert.match(stringId, mode === 'stream' ? /^\d+-\d+$/ : /^[0-9a-z]{8}-[0-9a-z]{8}$/)
  })

  test(`[${mode}] non-ASCII ids and data, mixed with ASCII in one batch, arrive intact`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const queue = new ReliableQueue(uniqueName('utf'), { url: redis.url, mode })
    t.after(() => queue.close())
    // jobs cross into JS as one string per batch with UTF-16 offsets: astral characters (two
    // UTF-16 units), 2- and 3-byte UTF-8 and plain ASCII side by side test those offsets
    const texts = ['plain', 'grüße', '日本語のテキスト', 'emoji 😀🎉 mixed', '', 'a\u0000b', '\u{10FFFF}']
    const items = texts.flatMap((text, i) => [
      { data: { text, i }, jobId: `id-${i}-${text}` },
      { data: text, jobId: undefined },
    ])
    const want = new Map()
    for (const { data, jobId } of items) want.set(await queue.add(data, jobId === undefined ? {} : { jobId }), data)
    const got = new Map()
    const worker = queue.process((job) => {
      got.set(job.id, job.data)
    }, { concurrency: 50 })
    await waitFor(() => got.size === want.size, 10_000, 'every job')
    await worker.close()
    assert.deepEqual(got, want)
  })
}

test('[stream] entries added by another client with plain XADD are jobs too', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const name = uniqueName('foreign')
  const queue = new ReliableQueue(name, { url: redis.url })
  t.after(() => queue.close())
  await redis.client.xAdd(key(name, 'stream'), '*', { d: '{"from":"elsewhere"}' })
  await redis.client.xAdd(key(name, 'stream'), '*', { d: 'not json' })
  const got = []
  const worker = queue.process(async (job) => got.push(job.data))
  await waitFor(() => got.length === 2, 10_000, 'two jobs')
  await worker.close()
  assert.deepEqual(got, [{ from: 'elsewhere' }, 'not json'])
})
