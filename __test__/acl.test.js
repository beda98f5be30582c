'use strict'
// Least privilege: both modes run end to end as an ACL user with exactly the rules README.md
// documents (parsed from it, so the document stays true): adds, dedup, delays, retries with
// backoff, dead letters, pause, stats, close. Redis's ACL LOG must show no denial.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { createClient } = require('redis')
const { ReliableQueue } = require('..')
const { RedisServer } = require('../scripts/redis-server')
const { uniqueName, waitFor, MODES, documentedAclRules } = require('./helpers/redis-server')

async function setup(t, rules) {
  const server = await RedisServer.start()
  const admin = createClient({ url: server.url })
  admin.on('error', () => {})
  await admin.connect()
  t.after(async () => {
    admin.destroy()
    await server.close()
  })
  await admin.sendCommand(['ACL', 'SETUSER', 'holdfast', ...rules.map((r) => (r === '>password' ? '>pw' : r))])
  return { admin, url: server.url.replace('redis://', 'redis://holdfast:pw@') }
}

async function denials(admin) {
  const log = await admin.sendCommand(['ACL', 'LOG'])
  return log.map((entry) => {
    const o = {}
    for (let i = 0; i < entry.length; i += 2) o[entry[i]] = entry[i + 1]
    return `${o.reason}:${o.object}`
  })
}

test('both modes run as an ACL user with exactly the documented rules', async (t) => {
  const { admin, url } = await setup(t, documentedAclRules())
  for (const mode of MODES) {
    const queue = new ReliableQueue(uniqueName('acl'), { url, mode })
    await queue.addBulk([1, 2, 3])
    await queue.add('dedup', { jobId: 'only-once' })
    await queue.add('dedup', { jobId: 'only-once' })
    await queue.add('delayed', { delayMs: 30 })
    await queue.add('fail-once', { backoff: { type: 'fixed', delayMs: 20 } })
    await queue.add('fail-always', { maxAttempts: 1 })
    await queue.pause()
    assert.equal((await queue.stats()).paused, true)
    await queue.resume()
    const done = []
    const errors = []
    const worker = queue.process(async (job) => {
      if (job.data === 'fail-always' || (job.data === 'fail-once' && job.attempt === 1)) throw new Error('no')
      done.push(job.data)
    }, { visibilityTimeoutMs: 300 })
    worker.on('error', (e) => errors.push(`${e.code} ${e.message}`))
    await waitFor(() => done.length === 6, 10_000, 'six jobs done')
    await waitFor(async () => (await queue.stats()).dead === 1, 10_000, 'one dead letter')
    assert.equal((await queue.dead.list())[0].data, 'fail-always')
    assert.equal(await queue.dead.retry('all'), 1)
    await waitFor(async () => (await queue.stats()).waiting + (await queue.stats()).active === 0 && done.length === 6, 10_000, 'retried')
    await queue.dead.purge()
    // outcomes, lookups and metrics need nothing more
    const kept = await queue.add('kept', { keepOutcomeMs: 60_000, jobId: 'kept' })
    assert.equal((await queue.waitFor(kept, { timeoutMs: 10_000 })).state, 'completed')
    assert.equal((await queue.getJob('kept')).state, 'completed')
    await queue.add('later', { jobId: 'later', delayMs: 60_000 })
    assert.equal((await queue.getJob('later')).state, 'delayed')
    assert.equal((await queue.getJob('nowhere')).state, 'unknown')
    assert.deepEqual(await queue.peek(), [])
    assert.match(await queue.metrics(), /^holdfast_redis_up\{[^}]*\} 1$/m)
    await queue.close()
    assert.deepEqual(errors, [], mode)
  }
  // fan-out: a second group, joining a stream that has entries at 'latest', with keys of its own
  const name = uniqueName('acl-fanout')
  const first = new ReliableQueue(name, { url })
  await first.add('before')
  const late = new ReliableQueue(name, { url, group: 'late', groupStart: 'latest' })
  const got = []
  const errors = []
  const worker = late.process(async (job) => {
    got.push(job.data)
  })
  worker.on('error', (e) => errors.push(`${e.code} ${e.message}`))
  await waitFor(async () => (await late.stats()).groups.some((g) => g.name === 'late'), 10_000, 'the late group')
  await first.add('after')
  await waitFor(() => got.length === 1, 10_000, 'the job added after it joined')
  assert.deepEqual(got, ['after'])
  await late.pause()
  assert.equal((await late.stats()).paused, true)
  await Promise.all([first.close(), late.close()])
  assert.deepEqual(errors, [], 'fan-out')
  assert.deepEqual(await denials(admin), [])
})

test('one documented rule fewer is refused: the rules above are needed', async (t) => {
  const { admin, url } = await setup(t, documentedAclRules().filter((r) => r !== '+xadd'))
  const queue = new ReliableQueue(uniqueName('acl-less'), { url })
  await assert.rejects(queue.add(1), { code: 'ERR_HOLDFAST_REDIS', message: /NOPERM/ })
  await queue.close()
  assert.ok((await denials(admin)).some((d) => d === 'command:xadd'))
})

test('without channels (the rules above less `&holdfast:*`) delays and pauses still work: workers poll', async (t) => {
  const rules = documentedAclRules().filter((r) => r !== '&holdfast:*')
  const { admin, url } = await setup(t, rules)
  for (const mode of MODES) {
    const queue = new ReliableQueue(uniqueName('acl-nochan'), { url, mode })
    const other = new ReliableQueue(queue.name, { url, mode })
    const done = []
    const errors = []
    const worker = queue.process(async (job) => {
      if (job.data === 'fail-once' && job.attempt === 1) throw new Error('no')
      done.push(job.data)
    })
    worker.on('error', (e) => errors.push(`${e.code} ${e.message}`))
    // from another queue object, so nothing of this process's own pause applies
    await other.add('delayed', { delayMs: 200 })
    await other.add('fail-once', { backoff: { type: 'fixed', delayMs: 200 } })
    await waitFor(() => done.length === 2, 10_000, 'the delayed job and the retry ran')
    await other.pause()
    await new Promise((r) => setTimeout(r, 1000)) // the flag is polled every 200 ms
    await other.add('while paused')
    await new Promise((r) => setTimeout(r, 500))
    assert.deepEqual(done.sort(), ['delayed', 'fail-once'])
    await other.resume()
    await waitFor(() => done.length === 3, 10_000, 'ran after resume')
    await other.close()
    await queue.close()
    assert.deepEqual(errors, [], mode)
  }
  // the only denials: the publishes and subscriptions that fell back to polling
  const denied = new Set(await denials(admin))
  assert.ok(denied.size > 0, 'the channel was refused')
  for (const d of denied) assert.match(d, /^channel:holdfast:\{acl-nochan/, [...denied].join(' '))
})
