'use strict'
// List mode consumes a plain list that other clients fill, the node-redis / redis-py recipe:
// `LPUSH jobs:email '<json>'`. No producer changes to move such a queue onto holdfast.
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, keysOf, deadLetters } = require('./helpers/redis-server')

test('[list] jobs LPUSHed by node-redis into an existing list are consumed: JSON parsed, other strings as they are', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const name = uniqueName('legacy')
  const listKey = `jobs:${name}`
  const queue = new ReliableQueue(name, { url: redis.url, mode: 'list', listKey })
  t.after(() => queue.close())

  // the existing producer, unchanged
  await redis.client.lPush(listKey, JSON.stringify({ to: 'a@b.c' }))
  await redis.client.lPush(listKey, 'plain text, not JSON')
  await redis.client.lPush(listKey, Array.from({ length: 100 }, (_, i) => JSON.stringify({ n: i })))
  // and holdfast's own add on the same list
  const ownId = await queue.add({ own: true }, { jobId: 'own-1' })

  const got = []
  const worker = queue.process(async (job) => {
    got.push(job)
  }, { concurrency: 20 })
  let held = null
  await waitFor(() => got.length === 103, 10_000, '103 jobs')
  held = await keysOf(redis.client, name)
  await waitFor(async () => (await queue.stats()).active === 0, 10_000, 'acks')
  await worker.close()

  assert.deepEqual(got.find((j) => j.data && j.data.to).data, { to: 'a@b.c' })
  assert.ok(got.some((j) => j.data === 'plain text, not JSON'), 'a non-JSON element arrives as its string')
  assert.deepEqual(got.filter((j) => j.data && j.data.n !== undefined).map((j) => j.data.n).sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i))
  assert.equal(got.find((j) => j.data && j.data.own).id, ownId)
  for (const j of got.filter((j) => j.id !== ownId)) {
    assert.match(j.id, /^raw-[0-9a-f]{16}$/, 'an element from another producer gets a content-derived id')
    assert.equal(j.attempt, 1)
  }
  // holdfast's own keys (processing list, heartbeat) live under its prefix, never beside listKey
  assert.ok(held.every((k) => k.startsWith(`holdfast:{${name}}:`)), held.join())
  assert.equal(await redis.client.exists(listKey), 0, 'the list was drained')
  assert.deepEqual(await keysOf(redis.client, name), [])
})

test('[list] a raw element that fails is retried as a holdfast job with the same id, then dead-lettered', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const name = uniqueName('legacy-retry')
  const listKey = `jobs:${name}`
  const queue = new ReliableQueue(name, { url: redis.url, mode: 'list', listKey })
  t.after(() => queue.close())
  await redis.client.lPush(listKey, JSON.stringify({ charge: 42 }))
  const runs = []
  const dead = []
  const worker = queue.process(async (job) => {
    runs.push([job.id, job.attempt, job.data])
    throw new Error('card declined')
  }, { maxAttempts: 2 })
  worker.on('dead', (id, reason) => dead.push([id, reason]))
  await waitFor(() => dead.length === 1, 10_000, 'dead letter')
  await worker.close()
  assert.equal(runs.length, 2)
  assert.equal(runs[0][0], runs[1][0], 'same id on the retry')
  assert.deepEqual(runs.map((r) => r[1]), [1, 2])
  assert.deepEqual(runs[1][2], { charge: 42 })
  assert.deepEqual(dead, [[runs[0][0], 'card declined']])
  const [record] = await deadLetters(redis.client, name)
  assert.deepEqual({ id: record.id, d: JSON.parse(record.d), a: record.a, err: record.err }, { id: runs[0][0], d: { charge: 42 }, a: 2, err: 'card declined' })
  assert.equal((await queue.stats()).dead, 1)
})
