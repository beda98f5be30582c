'use strict'
// `holdfast dashboard`, spawned as a user runs it, on a real Redis: its JSON API (queues, dead
// letters, retry, purge, pause; tokens; cross-origin and bad requests), and the page in headless
// Chromium (Debian's chromium, driven by puppeteer-core): it shows the queues and a dead letter,
// and its Retry and Purge buttons act on Redis.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const fs = require('node:fs')
const os = require('node:os')
const { spawn, execFileSync } = require('node:child_process')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, freePort } = require('./helpers/redis-server')

const BIN = path.join(__dirname, '..', 'bin', 'holdfast.js')

function findChromium() {
  for (const name of [process.env.CHROMIUM_BIN, 'chromium', 'chromium-browser'].filter(Boolean)) {
    try {
      return execFileSync('sh', ['-c', `command -v "${name}"`], { encoding: 'utf8' }).trim()
    } catch {}
  }
  return null
}
const CHROMIUM = findChromium()
// CI installs chromium (.ci/run); elsewhere the browser test says why it did not run
const browserSkip = !CHROMIUM && !process.env.CI && 'no chromium on PATH (apt-get install -y chromium)'

/** Starts `holdfast dashboard`; resolves to { url, base, stop() } once it listens. */
async function dashboard(args) {
  const port = await freePort()
  const child = spawn(process.execPath, [BIN, 'dashboard', '--port', String(port), ...args], {
    env: { ...process.env, REDIS_URL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  const exited = new Promise((resolve) => child.once('exit', resolve))
  await waitFor(() => /holdfast dashboard on (\S+)/.test(out) || child.exitCode !== null, 20_000, `dashboard listening: ${out}`)
  const url = /holdfast dashboard on (\S+)/.exec(out)?.[1]
  assert.ok(url, `the dashboard did not start: ${out}`)
  return {
    url,
    base: `http://127.0.0.1:${port}`,
    output: () => out,
    async stop() {
      if (child.exitCode === null) child.kill('SIGINT')
      return exited
    },
  }
}

async function api(base, route, { method = 'GET', body, headers = {} } = {}) {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  let json
  try {
    json = JSON.parse(text)
  } catch {}
  return { status: res.status, json, text }
}

/** A queue with `n` dead letters (ids dead-0..), and a worker that fails until `fixed()`. */
async function queueWithDeadLetters(url, prefix, name, n) {
  const queue = new ReliableQueue(name, { url, prefix })
  let failing = true
  const worker = queue.process(async (job) => {
    if (failing) throw new Error(`cannot send ${job.data.to}`)
  }, { maxAttempts: 1 })
  for (let i = 0; i < n; i++) await queue.add({ to: `user${i}@example.com` }, { jobId: `dead-${i}` })
  await waitFor(async () => (await queue.stats()).dead === n, 10_000, `${n} dead letters`)
  return {
    queue,
    worker,
    fixed: () => (failing = false),
    close: async () => {
      await worker.close()
      await queue.close()
    },
  }
}

test('the API: queues, a queue, dead letters, retry, purge, pause; 4xx for bad requests', async (t) => {
  const redis = await useRedis()
  t.after(() => redis.close())
  const prefix = uniqueName('dash')
  const name = uniqueName('dash emails/welcome')
  const q = await queueWithDeadLetters(redis.url, prefix, name, 2)
  t.after(() => q.close())
  const d = await dashboard(['--url', redis.url, '--prefix', prefix])
  t.after(() => d.stop())
  const enc = encodeURIComponent(name)

  const queues = await api(d.base, '/api/queues')
  assert.equal(queues.status, 200, queues.text)
  assert.equal(queues.json.length, 1)
  const [row] = queues.json
  assert.deepEqual(
    { name: row.name, mode: row.mode, waiting: row.waiting, active: row.active, delayed: row.delayed, dead: row.dead, workers: row.workers, paused: row.paused },
    { name, mode: 'stream', waiting: 0, active: 0, delayed: 0, dead: 2, workers: 1, paused: false },
  )
  const one = await api(d.base, `/api/queues/${enc}`)
  assert.equal(one.json.dead, 2)
  const dead = await api(d.base, `/api/queues/${enc}/dead?limit=10`)
  assert.deepEqual(dead.json.map((x) => [x.id, x.error]).sort(), [
    ['dead-0', 'cannot send user0@example.com'],
    ['dead-1', 'cannot send user1@example.com'],
  ])

  q.fixed()
  const moved = await api(d.base, `/api/queues/${enc}/dead/retry`, { method: 'POST', body: { ids: ['dead-1'] } })
  assert.deepEqual([moved.status, moved.json], [200, { moved: 1 }])
  await waitFor(async () => (await q.queue.stats()).completed === 1, 10_000, 'the retried job ran')
  assert.equal((await q.queue.stats()).dead, 1)

  const paused = await api(d.base, `/api/queues/${enc}/pause`, { method: 'POST', body: {} })
  assert.deepEqual([paused.status, paused.json], [200, { paused: true }])
  assert.equal((await q.queue.stats()).paused, true)
  await api(d.base, `/api/queues/${enc}/resume`, { method: 'POST', body: {} })
  assert.equal((await q.queue.stats()).paused, false)

  const purged = await api(d.base, `/api/queues/${enc}/dead/purge`, { method: 'POST', body: {} })
  assert.deepEqual([purged.status, purged.json], [200, { purged: 1 }])

  // bad requests: each a 4xx with a coded JSON error, none a stack trace
  const bad = [
    ['/api/queues/no-such-queue', {}, 404, 'ERR_HOLDFAST_UNKNOWN_QUEUE'],
    ['/api/queues/no-such-queue/dead/retry', { method: 'POST', body: { all: true } }, 404, 'ERR_HOLDFAST_UNKNOWN_QUEUE'],
    [`/api/queues/${enc}/dead?limit=lots`, {}, 400, 'ERR_HOLDFAST_INVALID_ARGUMENT'],
    [`/api/queues/${enc}/dead/retry`, { method: 'POST', body: { ids: 'dead-0' } }, 400, 'ERR_HOLDFAST_INVALID_ARGUMENT'],
    [`/api/queues/${enc}/dead/retry`, { method: 'POST', body: { all: true }, headers: { origin: 'http://evil.example' } }, 403, 'ERR_HOLDFAST_FORBIDDEN'],
    [`/api/queues/${enc}/dead/purge`, { method: 'POST', headers: { 'content-type': 'text/plain' } }, 403, 'ERR_HOLDFAST_FORBIDDEN'],
    [`/api/queues/${enc}/dead/purge`, {}, 405, 'ERR_HOLDFAST_METHOD_NOT_ALLOWED'],
    ['/api/nothing-here', {}, 404, 'ERR_HOLDFAST_NOT_FOUND'],
  ]
  for (const [route, opts, status, code] of bad) {
    const r = await api(d.base, route, opts)
    assert.equal(r.status, status, `${route}: ${r.text}`)
    assert.equal(r.json?.error?.code, code, route)
    assert.doesNotMatch(r.text, /\n\s+at /, 'no stack trace')
  }
  // DNS rebinding: a page on another name that resolves to 127.0.0.1 (fetch cannot set Host)
  const rebound = await new Promise((resolve, reject) => {
    const req = require('node:http').get(`${d.base}/api/queues`, { headers: { host: 'attacker.example' } }, (res) => {
      let text = ''
      res.on('data', (c) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(text) }))
    })
    req.on('error', reject)
  })
  assert.deepEqual([rebound.status, rebound.json.error.code], [403, 'ERR_HOLDFAST_FORBIDDEN'])
})

test('with --token the API wants it (401 without, or with a wrong one); an unreachable Redis is a 503', async (t) => {
  const redis = await useRedis({ restartable: true })
  t.after(() => redis.close())
  const prefix = uniqueName('dash-token')
  const queue = new ReliableQueue(uniqueName('dash-token-q'), { url: redis.url, prefix })
  t.after(() => queue.close())
  await queue.add(1)
  const d = await dashboard(['--url', redis.url, '--prefix', prefix, '--token', 's3cret token'])
  t.after(() => d.stop())
  assert.match(d.url, /\?token=s3cret%20token$/, 'the printed url carries the token')
  assert.equal((await api(d.base, '/api/queues')).status, 401)
  assert.equal((await api(d.base, '/api/queues', { headers: { authorization: 'Bearer wrong' } })).status, 401)
  const ok = await api(d.base, '/api/queues', { headers: { authorization: 'Bearer s3cret token' } })
  assert.equal(ok.status, 200)
  assert.equal(ok.json[0].waiting, 1)

  await redis.server.stop()
  const down = await api(d.base, '/api/queues', { headers: { authorization: 'Bearer s3cret token' } })
  assert.equal(down.status, 503, down.text)
  assert.equal(down.json.error.code, 'ERR_HOLDFAST_CONNECTION')
})

test('holdfast dashboard exits 1 with a message when Redis cannot be reached or the port is taken', async (t) => {
  const run = (args) =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [BIN, 'dashboard', ...args], { env: { ...process.env, REDIS_URL: '' } })
      let err = ''
      child.stderr.on('data', (d) => (err += d))
      child.on('exit', (code) => resolve({ code, err }))
    })
  const unreachable = await run(['--url', `redis://127.0.0.1:${await freePort()}`, '--port', '0'])
  assert.equal(unreachable.code, 1)
  assert.match(unreachable.err, /^holdfast: cannot reach Redis/)

  const redis = await useRedis()
  t.after(() => redis.close())
  const taken = require('node:net').createServer().listen(0, '127.0.0.1')
  t.after(() => taken.close())
  await new Promise((r) => taken.once('listening', r))
  const busy = await run(['--url', redis.url, '--port', String(taken.address().port)])
  assert.equal(busy.code, 1)
  assert.match(busy.err, /^holdfast: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/)
  for (const r of [unreachable, busy]) assert.doesNotMatch(r.err, /\n\s+at /)
})

test('the page, in headless Chromium: the queues, a dead letter, and Retry and Purge buttons that work', { skip: browserSkip }, async (t) => {
  assert.ok(CHROMIUM, 'chromium is required on CI: .ci/run installs it')
  const puppeteer = require('puppeteer-core')
  const redis = await useRedis()
  t.after(() => redis.close())
  const prefix = uniqueName('dash-page')
  const name = uniqueName('page emails/welcome')
  const q = await queueWithDeadLetters(redis.url, prefix, name, 2)
  t.after(() => q.close())
  const other = new ReliableQueue(uniqueName('page reports'), { url: redis.url, prefix, mode: 'list' })
  t.after(() => other.close())
  await other.addBulk([1, 2, 3])
  const d = await dashboard(['--url', redis.url, '--prefix', prefix])
  t.after(() => d.stop())

  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'holdfast-chromium-'))
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  })
  t.after(async () => {
    await browser.close()
    fs.rmSync(profile, { recursive: true, force: true })
  })
  const page = await browser.newPage()
  const problems = []
  page.on('pageerror', (e) => problems.push(e.message))
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()))
  await page.setViewport({ width: 1280, height: 800 })

  await page.goto(d.base, { waitUntil: 'load' })
  const cell = (queue, field) => `#queues tr[data-queue="${queue.replace(/"/g, '\\"')}"] td[data-field="${field}"]`
  await page.waitForSelector(cell(name, 'dead'), { timeout: 20_000 })
  const read = (sel) => page.$eval(sel, (el) => el.getAttribute('data-value') ?? el.textContent)
  assert.equal(await read(cell(name, 'dead')), '2')
  assert.equal(await read(cell(other.name, 'waiting')), '3')
  assert.equal(await read(cell(other.name, 'mode')), 'list')

  // the queue's page: its dead letters, with their errors
  await page.goto(`${d.base}/#/queue/${encodeURIComponent(name)}`, { waitUntil: 'load' })
  const row = (id) => `#dead tr[data-dead-id="${id}"]`
  await page.waitForSelector(row('dead-0'), { timeout: 20_000 })
  assert.equal(await read(`${row('dead-0')} td[data-field="error"]`), 'cannot send user0@example.com')
  assert.ok(await page.$(row('dead-1')))
  if (process.env.HOLDFAST_SCREENSHOT) await page.screenshot({ path: process.env.HOLDFAST_SCREENSHOT })

  // Retry on one row: the job goes back to the queue, and runs
  q.fixed()
  await page.click(`${row('dead-0')} button[data-action="retry"]`)
  await waitFor(async () => (await q.queue.stats()).completed === 1, 10_000, 'the job retried from the page ran')
  await page.waitForSelector(row('dead-0'), { hidden: true, timeout: 20_000 })
  assert.equal((await q.queue.stats()).dead, 1)

  // Purge all, after the confirmation the page asks for
  page.on('dialog', (dialog) => dialog.accept())
  await page.click('#purge-all')
  await waitFor(async () => (await q.queue.stats()).dead === 0, 10_000, 'purged from the page')
  await page.waitForSelector(row('dead-1'), { hidden: true, timeout: 20_000 })
  assert.deepEqual(problems, [], 'no script errors on the page')
})
