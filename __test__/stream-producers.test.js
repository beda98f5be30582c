'use strict'
// Stream mode consumes a stream that other clients fill, the pattern the Redis Streams articles
// teach: `XADD jobs:stream * type email to user@example.com subject Welcome`, a consumer group
// `workers`. Producers stay as they are; an existing group is joined, never re-created.
const test = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const { promisify } = require('node:util')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, keysOf } = require('./helpers/redis-server')

const run = promisify(execFile)
const redisCli = (url, ...args) => run('redis-cli', ['-u', url, ...args])

test('[stream] entries XADDed by redis-cli and node-redis to an existing stream arrive as their field maps', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const name = uniqueName('seed')
  const streamKey = `jobs:${name}`
  // the seed's producers, unchanged
  await redisCli(redis.url, 'XADD', streamKey, '*', 'type', 'email', 'to', 'user@example.com', 'subject', 'Welcome')
  await redis.client.xAdd(streamKey, '*', { type: 'sms', to: '+15550100', id: 'order-7', a: '9' })
  await redis.client.xAdd(streamKey, '*', { d: 'plain text, not JSON' })
  await redis.client.xAdd(streamKey, '*', { d: JSON.stringify({ n: 1 }) })
  const queue = new ReliableQueue(name, { url: redis.url, streamKey })
  t.after(() => queue.close())
  const ownId = await queue.add({ own: true }, { jobId: 'own-1' })

  const got = []
  const worker = queue.process(async (job) => {
    got.push({ id: job.id, attempt: job.attempt, data: job.data })
  })
  await waitFor(() => got.length === 5, 10_000, '5 jobs')
  let held = await keysOf(redis.client, name)
  await waitFor(async () => (await queue.stats()).active === 0, 10_000, 'acks')
  await worker.close()

  const entries = got.filter((j) => j.id !== ownId)
  for (const j of entries) {
    assert.match(j.id, /^\d+-\d+$/, 'a job from another producer is known by its entry id')
    assert.equal(j.attempt, 1)
  }
  assert.deepEqual(entries.map((j) => j.data), [
    { type: 'email', to: 'user@example.com', subject: 'Welcome' },
    // `id` and `a` are the producer's fields here, not holdfast's job id and attempt
    { type: 'sms', to: '+15550100', id: 'order-7', a: '9' },
    'plain text, not JSON',
    { n: 1 },
  ])
  assert.deepEqual(got.find((j) => j.id === ownId).data, { own: true })
  // holdfast's own keys live under its prefix, never beside streamKey
  assert.ok(held.every((k) => k.startsWith(`holdfast:{${name}}:`)), held.join())
  await waitFor(async () => (await redis.client.xLen(streamKey)) === 0, 10_000, 'finished entries trimmed')
  const groups = await redis.client.xInfoGroups(streamKey)
  assert.deepEqual(groups.map((g) => g.name), ['workers'])
})

test('[stream] a field-map job keeps its fields through retries, the dead letters and dead.retry()', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const name = uniqueName('seed-retry')
  const streamKey = `jobs:${name}`
  const queue = new ReliableQueue(name, { url: redis.url, streamKey })
  t.after(() => queue.close())
  const fields = { type: 'charge', amount: '42', note: 'quote " and \\ and\nnewline' }
  const entryId = await redis.client.xAdd(streamKey, '*', fields)

  const runs = []
  let failing = true
  const worker = queue.process(async (job) => {
    runs.push({ id: job.id, attempt: job.attempt, data: job.data })
    if (failing) throw new Error('card declined')
  }, { maxAttempts: 3, backoff: (attempt) => (attempt === 1 ? 0 : 50) }) // at once, then via `delayed`
  const dead = []
  worker.on('dead', (id) => dead.push(id))
  await waitFor(() => dead.length === 1, 10_000, 'dead letter')
  assert.deepEqual(runs.map((r) => [r.id, r.attempt]), [[entryId, 1], [entryId, 2], [entryId, 3]])
  for (const r of runs) assert.deepEqual(r.data, fields)
  const [letter] = await queue.dead.list()
  assert.equal(letter.id, entryId)
  assert.deepEqual(letter.data, fields)

  failing = false
  assert.equal(await queue.dead.retry('all'), 1)
  await waitFor(() => runs.length === 4, 10_000, 'the dead job runs again')
  assert.deepEqual(runs[3], { id: entryId, attempt: 1, data: fields })
  await worker.close()
})

test('[stream] joins an existing group: entries pending for a consumer that died are recovered, the group is kept', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const name = uniqueName('seed-group')
  const streamKey = `jobs:${name}`
  const c = redis.client
  // the seed's consumer: it created the group, read two entries and died before XACK
  await c.xGroupCreate(streamKey, 'workers', '$', { MKSTREAM: true })
  for (let i = 0; i < 3; i++) await c.xAdd(streamKey, '*', { n: String(i) })
  const read = await c.xReadGroup('workers', 'consumer1', { key: streamKey, id: '>' }, { COUNT: 2 })
  assert.equal(read[0].messages.length, 2)
  const before = (await c.xInfoGroups(streamKey))[0]

  const queue = new ReliableQueue(name, { url: redis.url, streamKey, group: 'workers' })
  t.after(() => queue.close())
  const got = []
  const stalled = []
  const worker = queue.process(async (job) => {
    got.push(job.data.n)
  }, { visibilityTimeoutMs: 1000 })
  worker.on('stalled', (id) => stalled.push(id))
  await waitFor(() => got.length === 3, 15_000, 'the waiting entry and the two pending ones')
  assert.deepEqual([...got].sort(), ['0', '1', '2'])
  assert.deepEqual(stalled.sort(), read[0].messages.map((m) => m.id).sort(), 'the dead consumer\'s entries came back as stalled')
  await waitFor(async () => (await queue.stats()).active === 0, 10_000, 'acks')
  await worker.close()

  const groups = await c.xInfoGroups(streamKey)
  assert.equal(groups.length, 1)
  assert.equal(groups[0].name, 'workers')
  assert.equal(groups[0].pending, 0)
  // the same group, not a new one: its dead consumer is still listed (holdfast deletes only
  // its own consumers), and its position is the last entry
  const consumers = (await c.xInfoConsumers(streamKey, 'workers')).map((x) => x.name)
  assert.ok(consumers.includes('consumer1'), consumers.join())
  assert.ok(before.pending === 2)
})

test('[stream] groupStart: a new group starts at the first waiting entry, or at the entries added after it', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  for (const [groupStart, want] of [['earliest', ['old', 'new']], ['latest', ['new']]]) {
    const name = uniqueName(`seed-${groupStart}`)
    const streamKey = `jobs:${name}`
    await redis.client.xAdd(streamKey, '*', { n: 'old' })
    const queue = new ReliableQueue(name, { url: redis.url, streamKey, group: 'late', groupStart })
    const got = []
    const worker = queue.process(async (job) => {
      got.push(job.data.n)
    })
    await waitFor(async () => (await redis.client.xInfoGroups(streamKey)).length === 1, 10_000, 'the group')
    await redis.client.xAdd(streamKey, '*', { n: 'new' })
    await waitFor(() => got.includes('new'), 10_000, `${groupStart}: the new entry`)
    await worker.close()
    await queue.close()
    assert.deepEqual(got, want, groupStart)
  }
})

test('[stream] streamKey and group are checked', () => {
  const bad = [
    [{ streamKey: '' }, /streamKey must be a Redis key/],
    [{ streamKey: 'x', mode: 'list' }, /streamKey needs mode 'stream'/],
    [{ group: '' }, /group must be a consumer group name/],
    [{ group: 'g', mode: 'list' }, /group and groupStart need mode 'stream'/],
    [{ groupStart: 'first' }, /unknown groupStart "first"/],
    [{ streamKey: 7 }, /streamKey must be a string/],
  ]
  for (const [opts, message] of bad) {
    assert.throws(() => new ReliableQueue('q', { url: 'redis://127.0.0.1:1', ...opts }), (e) => e.code === 'ERR_HOLDFAST_INVALID_ARGUMENT' && message.test(e.message), JSON.stringify(opts))
  }
})
