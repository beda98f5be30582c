'use strict'
// The `holdfast` command, spawned as a user runs it: every command, --json, --help, and the
// exit codes and messages for bad input (never a stack trace).
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { execFile } = require('node:child_process')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, freePort } = require('./helpers/redis-server')

const BIN = path.join(__dirname, '..', 'bin', 'holdfast.js')

/** Runs the CLI; resolves to { code, stdout, stderr } whatever the exit code. */
function holdfast(args, env = {}) {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, REDIS_URL: '', ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr })
    })
  })
}

/** No stack trace, ever: a line like "    at fn (file:1:2)". */
function noStack(r) {
  assert.doesNotMatch(r.stderr + r.stdout, /^\s+at .+:\d+:\d+\)?$/m)
}

test('every command answers --help with its usage, and the bare command lists them', async () => {
  const top = await holdfast(['--help'])
  assert.equal(top.code, 0)
  const commands = ['queues', 'stats', 'peek', 'job', 'dead', 'pause', 'resume', 'watch', 'metrics', 'dashboard']
  for (const c of commands) assert.match(top.stdout, new RegExp(`^  ${c} `, 'm'))
  const helps = await Promise.all(commands.map((c) => holdfast([c, '--help'])))
  for (const [i, r] of helps.entries()) {
    assert.equal(r.code, 0, commands[i])
    assert.match(r.stdout, new RegExp(`^Usage: holdfast ${commands[i]}`), commands[i])
    assert.match(r.stdout, /--url URL/)
  }
  const bare = await holdfast([])
  assert.equal(bare.code, 2)
  assert.match(bare.stdout, /Commands:/)
})

test('stats, peek, queues, pause and resume, in tables and in JSON', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const prefix = uniqueName('cli')
  const url = redis.url
  const name = uniqueName('cli orders')
  const listName = uniqueName('cli-list')
  const queue = new ReliableQueue(name, { url, prefix })
  const list = new ReliableQueue(listName, { url, prefix, mode: 'list' })
  t.after(() => Promise.all([queue.close(), list.close()]))
  await queue.addBulk([{ n: 1 }, { n: 2 }, { n: 3 }])
  await list.add('raw text', { delayMs: 60_000 })
  await list.add({ hello: 'list' })
  const conn = ['--url', url, '--prefix', prefix]

  const stats = await holdfast(['stats', name, ...conn, '--json'])
  assert.equal(stats.code, 0, stats.stderr)
  const s = JSON.parse(stats.stdout)
  assert.equal(s.mode, 'stream')
  assert.deepEqual([s.waiting, s.active, s.delayed, s.dead, s.paused], [3, 0, 0, 0, false])
  assert.equal(typeof s.oldestWaitingMs, 'number')
  const human = await holdfast(['stats', name, ...conn])
  assert.match(human.stdout, /^waiting\s+3$/m)
  assert.match(human.stdout, /^mode\s+stream$/m)

  // the mode comes from the keys: the list queue is read as one without --mode
  const listStats = JSON.parse((await holdfast(['stats', listName, ...conn, '--json'])).stdout)
  assert.deepEqual([listStats.mode, listStats.waiting, listStats.delayed], ['list', 1, 1])

  const peek = await holdfast(['peek', name, ...conn, '--limit', '2', '--json'])
  assert.equal(peek.code, 0, peek.stderr)
  assert.deepEqual(JSON.parse(peek.stdout).map((j) => j.data), [{ n: 1 }, { n: 2 }])
  const peekTable = await holdfast(['peek', name, ...conn])
  assert.equal(peekTable.stdout.trim().split('\n').length, 4, peekTable.stdout)
  assert.match(peekTable.stdout, /^ID\s+ATTEMPT\s+DATA$/m)
  assert.equal((await queue.stats()).waiting, 3, 'peek took nothing')

  const queues = await holdfast(['queues', ...conn, '--json'])
  assert.equal(queues.code, 0, queues.stderr)
  assert.deepEqual(
    JSON.parse(queues.stdout).map((q) => [q.name, q.mode, q.waiting]),
    [[name, 'stream', 3], [listName, 'list', 1]].sort((a, b) => (a[0] < b[0] ? -1 : 1)),
  )
  const table = await holdfast(['queues', ...conn])
  const lines = table.stdout.trim().split('\n')
  assert.match(lines[0], /^QUEUE\s+MODE\s+WAITING\s+ACTIVE\s+DELAYED\s+DEAD\s+WORKERS\s+PAUSED/)
  // aligned: every row's WAITING number ends where the header's WAITING does
  const end = lines[0].indexOf('WAITING') + 'WAITING'.length
  for (const line of lines.slice(1)) assert.match(line.slice(0, end), /\d$/, line)

  assert.equal((await holdfast(['pause', name, ...conn])).code, 0)
  assert.equal((await queue.stats()).paused, true)
  const paused = await holdfast(['resume', name, ...conn, '--json'])
  assert.deepEqual(JSON.parse(paused.stdout), { name, paused: false })
  assert.equal((await queue.stats()).paused, false)

  const empty = await holdfast(['queues', '--url', url, '--prefix', uniqueName('nothing')])
  assert.equal(empty.code, 0)
  assert.match(empty.stdout, /no queues under prefix/)
})

test('dead list, retry (ids or --all) and purge; a wrong id exits 3', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const name = uniqueName('cli-dead')
  const queue = new ReliableQueue(name, { url: redis.url })
  t.after(() => queue.close())
  const conn = ['--url', redis.url]
  for (let i = 0; i < 3; i++) await queue.add({ i }, { jobId: `job-${i}` })
  let failing = true
  const worker = queue.process(async (job) => {
    if (failing) throw new Error(`no luck for ${job.id}`)
  }, { maxAttempts: 1 })
  await waitFor(async () => (await queue.stats()).dead === 3, 10_000, 'three dead letters')

  const where = await holdfast(['job', name, 'job-2', ...conn, '--json'])
  assert.equal(where.code, 0, where.stderr)
  assert.deepEqual(JSON.parse(where.stdout), { ...JSON.parse(where.stdout), id: 'job-2', state: 'dead', error: 'no luck for job-2', data: { i: 2 } })
  const nowhere = await holdfast(['job', name, 'no-such-job', ...conn])
  assert.equal(nowhere.code, 3)
  assert.match(nowhere.stdout, /^state\s+unknown$/m)
  const listed = await holdfast(['dead', 'list', name, ...conn, '--json'])
  assert.equal(listed.code, 0, listed.stderr)
  const items = JSON.parse(listed.stdout)
  assert.deepEqual(items.map((d) => d.id).sort(), ['job-0', 'job-1', 'job-2'])
  assert.deepEqual(items.find((d) => d.id === 'job-1'), { id: 'job-1', data: { i: 1 }, error: 'no luck for job-1', attempts: 1, failedAt: items.find((d) => d.id === 'job-1').failedAt })
  const table = await holdfast(['dead', 'list', name, ...conn, '--limit', '2'])
  assert.match(table.stdout, /^ID\s+ATTEMPTS\s+FAILED AT\s+ERROR\s+DATA$/m)
  assert.match(table.stdout, /\(1-2 of 3, newest first\)/)

  failing = false
  const one = await holdfast(['dead', 'retry', name, 'job-1', ...conn])
  assert.equal(one.code, 0, one.stderr)
  assert.match(one.stdout, /moved 1 back/)
  const wrong = await holdfast(['dead', 'retry', name, 'job-1', 'no-such-id', ...conn])
  assert.equal(wrong.code, 3)
  assert.match(wrong.stdout, /moved 0 of 2/)
  await waitFor(async () => (await queue.stats()).completed === 1, 10_000, 'the retried job ran')

  const refused = await holdfast(['dead', 'purge', name, ...conn])
  assert.equal(refused.code, 2)
  assert.match(refused.stderr, /add --yes/)
  assert.equal((await queue.stats()).dead, 2, 'nothing purged without --yes')
  const all = await holdfast(['dead', 'retry', name, '--all', ...conn, '--json'])
  assert.deepEqual(JSON.parse(all.stdout), { moved: 2, requested: 'all' })
  await waitFor(async () => (await queue.stats()).completed === 3, 10_000, 'all ran')
  failing = true
  await queue.add({ last: true }, { jobId: 'last' })
  await waitFor(async () => (await queue.stats()).dead === 1, 10_000, 'dead again')
  const purged = await holdfast(['dead', 'purge', name, ...conn, '--yes'])
  assert.equal(purged.code, 0)
  assert.match(purged.stdout, /deleted 1 dead letters/)
  await worker.close()
})

test('watch prints counts and rates each interval, and stops after --count', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const name = uniqueName('cli-watch')
  const queue = new ReliableQueue(name, { url: redis.url })
  t.after(() => queue.close())
  await queue.add(1)
  const watched = holdfast(['watch', name, '--url', redis.url, '--count', '3', '--json'])
  const worker = queue.process(async () => {})
  await waitFor(async () => (await queue.stats()).waiting === 0, 10_000, 'drained')
  const r = await watched
  assert.equal(r.code, 0, r.stderr)
  const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l))
  assert.equal(rows.length, 3)
  assert.equal(rows[0].completedPerSecond, null, 'no rate before two samples')
  assert.equal(typeof rows[2].completedPerSecond, 'number')
  assert.ok(rows.every((row) => typeof row.waiting === 'number' && typeof row.t === 'string'))
  const plain = await holdfast(['watch', name, '--url', redis.url, '--count', '2'])
  const lines = plain.stdout.trim().split('\n')
  assert.equal(lines.length, 3, 'a header, then one line per refresh')
  assert.match(lines[0], /^TIME\s+WAITING/)
  await worker.close()
})

test('bad input: unknown queue (3), unreachable Redis (1), bad flags and arguments (2), no stack traces', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const url = redis.url
  const cases = [
    [['stats', 'no-such-queue', '--url', url], 3, /no queue 'no-such-queue' under prefix 'holdfast'/],
    [['dead', 'list', 'no-such-queue', '--url', url], 3, /no queue/],
    [['pause', 'no-such-queue', '--url', url], 3, /no queue/],
    [['stats', 'q', '--url', `redis://127.0.0.1:${await freePort()}`], 1, /cannot reach Redis.*ERR_HOLDFAST_CONNECTION/],
    [['queues', '--url', 'http://nope'], 2, /url/i],
    [['stats', 'q', '--bogus'], 2, /Unknown option '--bogus'/],
    [['stats'], 2, /which queue/],
    [['frobnicate'], 2, /unknown command 'frobnicate'/],
    [['peek', 'q', '--limit', 'many', '--url', url], 2, /--limit must be a whole number/],
    [['stats', 'q', '--mode', 'fifo'], 2, /--mode must be stream or list/],
    [['dead', 'bury', 'q'], 2, /dead takes list, retry or purge/],
    [['dead', 'retry', 'q', '--url', url], 2, /job ids, or --all/],
    [['stats', 'q', '--tls-ca', '/no/such/file.pem'], 2, /--tls-ca: cannot read/],
    [['dashboard', '--host', '0.0.0.0', '--url', url], 2, /give --token/],
  ]
  const results = await Promise.all(cases.map(([args]) => holdfast(args)))
  for (const [i, r] of results.entries()) {
    const [args, code, message] = cases[i]
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, message, args.join(' '))
    assert.match(r.stderr, /^holdfast: /, args.join(' '))
    noStack(r)
  }
})
