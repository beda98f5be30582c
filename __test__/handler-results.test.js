'use strict'
// Whatever a handler returns or throws settles that job alone: the rest of the batch runs, the
// outcomes reach Redis, and close() returns. A thenable is adopted as `await` would adopt it.
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, MODES, deadLetters } = require('./helpers/redis-server')

/** What each job's handler does, by job data; `expect` is the outcome. */
const CASES = {
  'then throws': { expect: 'failed', run: () => ({ then() { throw new Error('then threw') } }) },
  'then getter throws': {
    expect: 'failed',
    run: () => Object.defineProperty({}, 'then', { get() { throw new Error('getter threw') } }),
  },
  'then resolves, then throws': { expect: 'completed', run: () => ({ then(ok) { ok(1); throw new Error('late') } }) },
  'then never calls back, rejects later': { expect: 'failed', run: () => ({ then(ok, fail) { setTimeout(() => fail('later'), 10) } }) },
  'toJSON throws': { expect: 'completed', run: () => ({ toJSON() { throw new Error('no JSON') } }) },
  'a function': { expect: 'completed', run: () => () => 1 },
  'a huge result': { expect: 'completed', run: async () => 'x'.repeat(20 << 20) },
  'throws an unprintable object': { expect: 'failed', run: () => { throw Object.create(null) } },
  'throws a symbol': { expect: 'failed', run: () => { throw Symbol('s') } },
  'throws a 1 MB string': { expect: 'failed', run: () => { throw 'y'.repeat(1 << 20) } },
  'a hostile proxy rejection': {
    expect: 'failed',
    run: () => Promise.reject(new Proxy({}, { getPrototypeOf() { throw new Error('trap') }, get() { throw new Error('trap') } })),
  },
  'plain value': { expect: 'completed', run: () => 42 },
}

for (const mode of MODES) {
  test(`[${mode}] any handler result or throw settles its job alone; the batch goes on and close() returns`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('results')
    const queue = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => queue.close())
    const names = Object.keys(CASES)
    await queue.addBulk(names, { jobIds: names.map((n) => n.replace(/\W+/g, '-')) })

    const outcomes = new Map()
    const errors = []
    const worker = queue.process((job) => CASES[job.data].run(), { maxAttempts: 1, concurrency: names.length })
    worker.on('completed', (job) => outcomes.set(job.data, 'completed'))
    worker.on('failed', (job, err) => {
      assert.ok(err instanceof Error, `${job.data}: failed gets an Error`)
      outcomes.set(job.data, 'failed')
    })
    worker.on('error', (err) => errors.push(err))
    await waitFor(() => outcomes.size === names.length, 20_000, 'every job settled')
    await worker.close()

    assert.deepEqual(Object.fromEntries(outcomes), Object.fromEntries(names.map((n) => [n, CASES[n].expect])))
    assert.deepEqual(errors, [])
    const stats = await queue.stats()
    assert.deepEqual([stats.waiting, stats.active, stats.dead], [0, 0, names.filter((n) => CASES[n].expect === 'failed').length])
    // reasons stored with dead letters are bounded
    const letters = await deadLetters(redis.client, name)
    const long = letters.find((l) => l.id === 'throws-a-1-MB-string')
    assert.ok(long.err.length < 5000 && /more characters/.test(long.err), long.err.slice(-60))
    assert.match(letters.find((l) => l.id === 'then-throws').err, /then threw/)
    assert.match(letters.find((l) => l.id === 'then-getter-throws').err, /getter threw/)
  })
}
