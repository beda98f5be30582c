'use strict'
// queue.metrics(): Prometheus text for the queue's counts (Redis) and this process's workers;
// metrics([...]) for several queues; what it says while Redis is down; stats' oldest waiting
// age and totals; peek; listQueues.
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue, metrics, listQueues, METRICS_CONTENT_TYPE } = require('..')
const { useRedis, uniqueName, waitFor, MODES, RedisServer } = require('./helpers/redis-server')

/**
 * A strict reader of the text format: every sample line belongs to the family declared by the
 * HELP and TYPE lines before it, each family is declared once, and label values unescape.
 * Returns { families: Map(name -> type), samples: [{ name, labels, value }] }.
 */
function parse(text) {
  assert.ok(text.endsWith('\n'), 'ends with a newline')
  const families = new Map()
  const samples = []
  let current = null
  for (const line of text.slice(0, -1).split('\n')) {
    let m
    if ((m = /^# HELP (\w+) \S.*$/.exec(line))) {
      assert.ok(!families.has(m[1]), `${m[1]} declared twice`)
      current = m[1]
      families.set(current, null)
    } else if ((m = /^# TYPE (\w+) (gauge|counter|histogram)$/.exec(line))) {
      assert.equal(m[1], current, line)
      families.set(current, m[2])
    } else {
      m = /^(\w+)\{(.*)\} (\S+)$/.exec(line)
      assert.ok(m, `a sample line: ${JSON.stringify(line)}`)
      const [, name, rawLabels, value] = m
      const base = families.get(current) === 'histogram' ? name.replace(/_(bucket|sum|count)$/, '') : name
      assert.equal(base, current, `${name} under ${current}`)
      const labels = {}
      for (const [, k, v] of rawLabels.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
        labels[k] = v.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c))
      }
      samples.push({ name, labels, value: value === '+Inf' ? Infinity : Number(value) })
    }
  }
  return { families, samples }
}

function value(samples, name, labels) {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  assert.equal(hits.length, 1, `one ${name} ${JSON.stringify(labels)}: ${JSON.stringify(hits)}`)
  return hits[0].value
}

for (const mode of MODES) {
  test(`[${mode}] metrics() counts this process's outcomes and reads the queue's counts`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    // a name that needs escaping in a label value
    const name = uniqueName('metrics "q" \\ x')
    const queue = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => queue.close())

    await queue.addBulk(['ok-1', 'ok-2', 'ok-3', 'flaky', 'doomed'])
    await new Promise((r) => setTimeout(r, 50))
    let m = parse(await queue.metrics())
    const q = { queue: name }
    assert.equal(value(m.samples, 'holdfast_redis_up', q), 1)
    assert.equal(value(m.samples, 'holdfast_queue_jobs', { ...q, state: 'waiting' }), 5)
    assert.ok(value(m.samples, 'holdfast_queue_oldest_waiting_seconds', q) >= 0.04)
    assert.equal(value(m.samples, 'holdfast_jobs_completed_total', q), 0)
    assert.deepEqual((await queue.peek({ limit: 2 })).map((j) => [j.data, j.attempt]), [['ok-1', 1], ['ok-2', 1]])

    const worker = queue.process(
      async (job) => {
        if (job.data === 'flaky' && job.attempt === 1) throw new Error('once')
        if (job.data === 'doomed') throw 'a string, not an Error' // eslint-disable-line no-throw-literal
        await new Promise((r) => setTimeout(r, 20))
      },
      { maxAttempts: 2 },
    )
    await waitFor(async () => (await queue.stats()).dead === 1 && (await queue.stats()).waiting + (await queue.stats()).active === 0, 10_000, 'drained')
    m = parse(await queue.metrics())
    assert.deepEqual(
      ['completed', 'failed', 'retried', 'dead', 'stalled'].map((k) => value(m.samples, `holdfast_jobs_${k}_total`, q)),
      [4, 3, 2, 1, 0],
    )
    assert.equal(value(m.samples, 'holdfast_queue_jobs', { ...q, state: 'dead' }), 1)
    assert.equal(value(m.samples, 'holdfast_queue_oldest_waiting_seconds', q), 0, 'nothing waits')
    assert.equal(value(m.samples, 'holdfast_workers', q), 1)
    assert.equal(value(m.samples, 'holdfast_queue_paused', q), 0)
    // the histogram: cumulative, +Inf = count = every handler run (4 + 3)
    const buckets = m.samples.filter((s) => s.name === 'holdfast_job_duration_seconds_bucket' && s.labels.queue === name)
    assert.ok(buckets.length > 5)
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value, 'cumulative')
    assert.equal(buckets.at(-1).labels.le, '+Inf')
    assert.equal(buckets.at(-1).value, 7)
    assert.equal(value(m.samples, 'holdfast_job_duration_seconds_count', q), 7)
    assert.ok(value(m.samples, 'holdfast_job_duration_seconds_sum', q) >= 3 * 0.02, 'three handlers slept 20 ms')
    assert.equal(m.families.get('holdfast_job_duration_seconds'), 'histogram')
    assert.equal(m.families.get('holdfast_jobs_completed_total'), 'counter')

    // every process's totals reach Redis within about a second
    await waitFor(async () => {
      const s = await queue.stats()
      return s.completed === 4 && s.failed === 3
    }, 10_000, 'totals in Redis')
    await worker.close()
    // counters survive the worker that counted them, and are shared by every object for the queue
    const again = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => again.close())
    assert.equal(value(parse(await again.metrics()).samples, 'holdfast_jobs_completed_total', q), 4)
  })
}

test('metrics() of several queues declares each family once; a queue whose Redis is down says so', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const down = await RedisServer.start()
  const a = new ReliableQueue(uniqueName('metrics-a'), { url: redis.url })
  const b = new ReliableQueue(uniqueName('metrics-b'), { url: redis.url, mode: 'list' })
  const gone = new ReliableQueue(uniqueName('metrics-gone'), { url: down.url })
  t.after(() => Promise.all([a.close(), b.close(), gone.close()]))
  await a.add(1)
  await gone.add(1)
  await down.close()

  const { families, samples } = parse(await metrics([a, b, gone]))
  assert.equal(families.size, 12)
  assert.equal(value(samples, 'holdfast_queue_jobs', { queue: a.name, state: 'waiting' }), 1)
  assert.equal(value(samples, 'holdfast_queue_jobs', { queue: b.name, state: 'waiting' }), 0)
  assert.equal(value(samples, 'holdfast_redis_up', { queue: gone.name }), 0)
  assert.equal(samples.filter((s) => s.labels.queue === gone.name && s.name.startsWith('holdfast_queue_')).length, 0)
  assert.equal(value(samples, 'holdfast_jobs_completed_total', { queue: gone.name }), 0, 'its counters are still there')
  assert.match(METRICS_CONTENT_TYPE, /^text\/plain; version=0\.0\.4/)
  await assert.rejects(metrics(['a']), { code: 'ERR_HOLDFAST_INVALID_ARGUMENT' })
  await assert.rejects(a.peek({ limit: -1 }), { code: 'ERR_HOLDFAST_INVALID_ARGUMENT' })
})

test('listQueues() finds the queues under a prefix, with their modes', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const prefix = uniqueName('prefix*[x]')
  const names = [uniqueName('found s'), uniqueName('found/l')]
  const s = new ReliableQueue(names[0], { url: redis.url, prefix })
  const l = new ReliableQueue(names[1], { url: redis.url, prefix, mode: 'list' })
  const other = new ReliableQueue(uniqueName('elsewhere'), { url: redis.url })
  t.after(() => Promise.all([s.close(), l.close(), other.close()]))
  await Promise.all([s.add(1), l.add(2), other.add(3)])
  const found = await listQueues({ url: redis.url, prefix })
  assert.deepEqual(found, [
    { name: names[0], mode: 'stream' },
    { name: names[1], mode: 'list' },
  ].sort((x, y) => (x.name < y.name ? -1 : 1)))
  const stats = await s.stats()
  assert.equal(stats.waiting, 1)
  assert.equal(typeof stats.oldestWaitingMs, 'number')
})
