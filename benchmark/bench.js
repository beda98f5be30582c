#!/usr/bin/env node
'use strict'
// Side-by-side throughput: holdfast (stream and list mode) against its peers, in one run on one Redis.
//
//   node benchmark/bench.js                 # N = 100000 on a throwaway redis-server
//   BENCH_N=200 node benchmark/bench.js     # smoke run
//   REDIS_URL=redis://host:port node benchmark/bench.js   # an existing server (never flushed)
//
// Scenarios (each peer, each scenario on a clean database):
//   addBulk  N jobs in batches of BENCH_BATCH (1000), one batch in flight; jobs/s.
//   addOne   min(N, BENCH_SERIAL_N) single adds, one at a time (each awaited); jobs/s.
//   add      N single adds from BENCH_CALLERS (100) concurrent callers; jobs/s.
//   drain    N jobs pre-filled, then a worker with `async (job) => job.data` at concurrency
//            BENCH_CONCURRENCY (100) until every job ran; jobs/s from worker start to the Nth run.
//   latency  single adds at a steady BENCH_LATENCY_RATE (1000/s): enqueue-to-handler-start.
//   memory   Redis used_memory_dataset per job after addBulk (waiting) and after the drain.
//   rss      the peer's worker alone in a child process: RSS idle, and its peak while draining N.
// Every job must run exactly once and the queue must be empty afterwards, or the run fails.
// Prints a progress line per scenario to stderr, a table to stdout, and writes
// benchmark/results.json and benchmark/results.svg (a chart of the same).
// Adding a peer = one file in peers/ and one entry in PEERS (here and in rss-child.js).

const fs = require('node:fs')
const { spawn } = require('node:child_process')
const readline = require('node:readline')
const os = require('node:os')
const path = require('node:path')
const { createClient } = require('redis')
const { RedisServer } = require('../scripts/redis-server')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const holdfast = require('./peers/holdfast')
const ALL_PEERS = [
  holdfast.stream,
  holdfast.list,
  require('./peers/bullmq'),
  require('./peers/bee-queue'),
  require('./peers/redis-stream'),
  require('./peers/redis-list'),
]
// BENCH_PEERS=holdfast,bullmq runs a subset; the baseline always runs.
const PEERS = process.env.BENCH_PEERS
  ? ALL_PEERS.filter((p) => p.name === 'holdfast' || process.env.BENCH_PEERS.split(',').includes(p.name))
  : ALL_PEERS
const BASELINE = 'holdfast' // the ratio column divides this peer by each other peer

function intEnv(name, dflt) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return dflt
  const v = Number(raw)
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`)
  return v
}

const N = intEnv('BENCH_N', 100_000)
const BATCH = intEnv('BENCH_BATCH', 1000)
const CONCURRENCY = intEnv('BENCH_CONCURRENCY', 100)
const STALL_MS = intEnv('BENCH_STALL_MS', 30_000) // fail a drain that makes no progress this long
const CALLERS = intEnv('BENCH_CALLERS', 100) // concurrent callers of the single-add scenario
const LATENCY_RATE = intEnv('BENCH_LATENCY_RATE', 1000) // jobs/s of the latency scenario
const LATENCY_N = intEnv('BENCH_LATENCY_N', 3000) // jobs of the latency scenario (at most N)
const SERIAL_N = intEnv('BENCH_SERIAL_N', 20_000) // jobs of the one-at-a-time add scenario
const RESULTS_FILE = process.env.BENCH_RESULTS || path.join(__dirname, 'results.json')
const CHART_FILE = RESULTS_FILE.replace(/\.json$/, '') + '.svg'
const RUN_ID = `${process.pid.toString(36)}${Date.now().toString(36)}`

/** About 45 bytes of JSON: {"to":"user@example.com","n":12345,"t":"welcome"}; `n` identifies the job. */
function makeItems(n) {
  const items = new Array(n)
  for (let i = 0; i < n; i++) items[i] = { to: 'user@example.com', n: i, t: 'welcome' }
  return items
}

const log = (msg) => process.stderr.write(`bench: ${msg}\n`)

/** A text table on stdout: first column left-aligned, the others right-aligned. */
function printTable(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
  process.stdout.write([line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n')
}
const fmtRate = (v) => (v == null ? '-' : Math.round(v).toLocaleString('en-US'))

class BenchFailure extends Error {}

function check(cond, message) {
  if (!cond) throw new BenchFailure(message)
}

/** Fills the queue batch by batch (one batch in flight); returns how many jobs were accepted. */
async function addInBatches(handle, items) {
  let added = 0
  for (let i = 0; i < items.length; i += BATCH) {
    const batch = items.slice(i, i + BATCH)
    const n = await handle.addBulk(batch)
    check(n === batch.length, `addBulk of ${batch.length} jobs returned ${n} ids`)
    added += n
  }
  return added
}

async function usedMemory(admin) {
  // the dataset only: client buffers and the Lua script cache are overhead, not jobs
  return Number(/used_memory_dataset:(\d+)/.exec(await admin.info('memory'))[1])
}

/** Enqueue-to-handler-start latency at a steady LATENCY_RATE, one `add` at a time. */
async function measureLatency(handle) {
  const n = Math.min(N, LATENCY_N)
  const lat = []
  let finish
  const done = new Promise((r) => (finish = r))
  const now = () => Number(process.hrtime.bigint()) / 1e6
  const worker = handle.startWorker({
    concurrency: CONCURRENCY,
    onData: (data) => {
      lat.push(now() - data.sent)
      if (lat.length === n) finish()
    },
    onFailed: () => {},
    onError: () => {},
  })
  try {
    await sleep(200) // let the worker connect and block on its read
    const start = now()
    const adds = []
    for (let i = 0; i < n; i++) {
      const due = start + (i * 1000) / LATENCY_RATE
      const wait = due - now()
      if (wait > 1) await sleep(wait)
      adds.push(handle.add({ to: 'user@example.com', n: i, sent: now() }))
    }
    await Promise.all(adds)
    let timer
    const stalled = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new BenchFailure(`latency: ${lat.length} of ${n} jobs ran`)), STALL_MS)
    })
    await Promise.race([done, stalled]).finally(() => clearTimeout(timer))
  } finally {
    await worker.close()
  }
  lat.sort((a, b) => a - b)
  const at = (p) => +lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(3)
  return { n, p50: at(0.5), p99: at(0.99), max: +lat[lat.length - 1].toFixed(3) }
}

/** The peer's worker alone in a child process (rss-child.js); this process fills the queue. */
async function measureRss(peer, where, items) {
  const child = spawn(process.execPath, [path.join(__dirname, 'rss-child.js')], {
    env: {
      ...process.env,
      BENCH_PEER: peer.name,
      BENCH_URL: where.url,
      BENCH_QUEUE: where.queue,
      BENCH_PREFIX: where.prefix,
      BENCH_EXPECT: String(items.length),
      BENCH_CONCURRENCY: String(CONCURRENCY),
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)))
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const next = async (what) => {
    let timer
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new BenchFailure(`rss ${peer.name}: no ${what} within ${STALL_MS} ms`)), STALL_MS)
    })
    const gone = exited.then((code) => {
      throw new BenchFailure(`rss ${peer.name}: the worker process exited (${code}) before reporting ${what}`)
    })
    try {
      const { value, done } = await Promise.race([lines.next(), timeout, gone])
      check(!done, `rss ${peer.name}: the worker process closed its output before reporting ${what}`)
      return JSON.parse(value)
    } finally {
      clearTimeout(timer)
    }
  }
  try {
    const { idleMb } = await next('idle RSS')
    const handle = await peer.open(where)
    try {
      await addInBatches(handle, items)
    } finally {
      await handle.close()
    }
    const { loadMb, processed } = await next('RSS under load')
    check(processed === items.length, `rss ${peer.name}: ${processed} of ${items.length} jobs ran in the worker process`)
    let timer
    const code = await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, STALL_MS, 'timeout')))])
    clearTimeout(timer)
    check(code === 0, `rss ${peer.name}: the worker process ended with ${code}, not by itself`)
    return { idleMb, loadMb }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
    child.stdin.destroy()
    child.stdout.destroy()
  }
}

const SCENARIOS = [
  {
    id: 'addBulk',
    label: `addBulk (batches of ${BATCH})`,
    async run(handle, items) {
      const t0 = process.hrtime.bigint()
      const added = await addInBatches(handle, items)
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9
      const counts = await handle.counts()
      check(added === items.length, `added ${added} of ${items.length} jobs`)
      check(counts.waiting === items.length, `after adding ${items.length} jobs the queue reports ${counts.waiting} waiting (${JSON.stringify(counts)})`)
      return { jobs: added, seconds, jobsPerSec: added / seconds, counts }
    },
  },
  {
    id: 'addOne',
    label: 'add, one at a time',
    async run(handle, items) {
      const n = Math.min(items.length, SERIAL_N)
      const t0 = process.hrtime.bigint()
      for (let i = 0; i < n; i++) await handle.add(items[i])
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9
      const counts = await handle.counts()
      check(counts.waiting === n, `after ${n} single adds the queue reports ${counts.waiting} waiting`)
      return { jobs: n, seconds, jobsPerSec: n / seconds, counts }
    },
  },
  {
    id: 'add',
    label: `add, ${CALLERS} concurrent callers`,
    async run(handle, items) {
      let next = 0
      const caller = async () => {
        while (next < items.length) await handle.add(items[next++])
      }
      const t0 = process.hrtime.bigint()
      await Promise.all(Array.from({ length: CALLERS }, caller))
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9
      const counts = await handle.counts()
      check(counts.waiting === items.length, `after ${items.length} single adds the queue reports ${counts.waiting} waiting`)
      return { jobs: items.length, seconds, jobsPerSec: items.length / seconds, counts }
    },
  },
  {
    id: 'drain',
    label: `drain (concurrency ${CONCURRENCY})`,
    async run(handle, items) {
      const n = items.length
      await addInBatches(handle, items)
      const before = await handle.counts()
      check(before.waiting === n, `pre-filled ${n} jobs but the queue reports ${before.waiting} waiting`)

      const seen = new Uint8Array(n)
      let processed = 0
      let duplicates = 0
      let unknown = 0
      let failed = 0
      const errors = []
      let tDone = null
      let finish
      const done = new Promise((resolve) => (finish = resolve))
      const onData = (data) => {
        const i = data && data.n
        if (!Number.isInteger(i) || i < 0 || i >= n) unknown++
        else if (seen[i]++) duplicates++
        if (++processed === n) {
          tDone = process.hrtime.bigint()
          finish()
        }
      }
      const onFailed = () => failed++
      const onError = (err) => {
        if (errors.length < 5) errors.push(err && err.message ? err.message : String(err))
      }

      const t0 = process.hrtime.bigint()
      const worker = handle.startWorker({ concurrency: CONCURRENCY, onData, onFailed, onError })
      let closed = false
      try {
        // Wait for the Nth job, failing if progress stops for STALL_MS.
        let last = -1
        let lastChange = Date.now()
        let finished = false
        done.then(() => (finished = true))
        while (!finished) {
          await Promise.race([done, sleep(100)])
          if (processed !== last) {
            last = processed
            lastChange = Date.now()
          } else if (Date.now() - lastChange > STALL_MS) {
            throw new BenchFailure(`drain stalled: ${processed} of ${n} jobs ran, no progress for ${STALL_MS} ms (errors: ${JSON.stringify(errors)})`)
          }
        }
        const seconds = Number(tDone - t0) / 1e9
        const tc = process.hrtime.bigint()
        await worker.close()
        closed = true
        const closeMs = Number(process.hrtime.bigint() - tc) / 1e6
        await sleep(50) // let late acks/events land before reading counts
        const after = await handle.counts()
        let missing = 0
        for (let i = 0; i < n; i++) if (seen[i] === 0) missing++
        check(failed === 0, `${failed} jobs failed`)
        check(unknown === 0, `${unknown} jobs with unexpected data ran`)
        check(duplicates === 0, `${duplicates} jobs ran more than once`)
        check(missing === 0 && processed === n, `${missing} jobs never ran (${processed} runs for ${n} jobs)`)
        check(after.waiting === 0 && after.active === 0, `after the drain the queue still reports ${after.waiting} waiting, ${after.active} active`)
        check(after.completed === null || after.completed === n, `after the drain ${after.completed} jobs are reported completed, expected ${n}`)
        return { jobs: n, seconds, jobsPerSec: n / seconds, closeMs, counts: after, workerErrors: errors }
      } finally {
        if (!closed) await worker.close().catch(() => {})
      }
    },
  },
]

let server = null
const openHandles = new Set()

function cleanupSync() {
  if (server && server.proc) server.proc.kill('SIGKILL')
  if (server) fs.rmSync(server.dir, { recursive: true, force: true })
  server = null
}

process.on('exit', cleanupSync)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    log(`${sig}: stopping`)
    cleanupSync()
    process.exit(128 + (os.constants.signals[sig] || 1))
  })
}

async function main() {
  const peers = PEERS.map((p) => ({ peer: p, info: p.describe() }))
  const external = process.env.REDIS_URL || null
  if (!external) server = await RedisServer.start()
  const url = external || server.url
  const admin = createClient({ url })
  admin.on('error', () => {})
  await admin.connect()
  openHandles.add({ close: async () => admin.destroy() })
  const redisInfo = { redis_version: /redis_version:(\S+)/.exec(await admin.info('server'))[1] }
  log(`redis ${redisInfo.redis_version} at ${external ? 'REDIS_URL (external: keys of this run are deleted, never FLUSHDB)' : url + ' (throwaway)'}; N=${N}, batch=${BATCH}, concurrency=${CONCURRENCY}, cpus=${os.cpus().length}`)

  const items = makeItems(N)
  const avgPayloadBytes = Math.round(items.reduce((s, d) => s + Buffer.byteLength(JSON.stringify(d)), 0) / N)
  const results = {}

  for (const scenario of SCENARIOS) {
    results[scenario.id] = {}
    for (const { peer } of peers) {
      // A clean database per scenario and peer: FLUSHDB only on our own throwaway server.
      if (!external) await admin.flushDb()
      const prefix = `bench-${peer.name}-${RUN_ID}`
      const queue = `${scenario.id}`
      const handle = await peer.open({ url, queue, prefix })
      openHandles.add(handle)
      let res
      try {
        // Redis memory per job: after addBulk the jobs are waiting; after the drain they are done
        const m0 = external ? null : await usedMemory(admin)
        res = await scenario.run(handle, items)
        if (m0 !== null) res.redisBytesPerJob = +(((await usedMemory(admin)) - m0) / N).toFixed(1)
      } finally {
        openHandles.delete(handle)
        await handle.close()
        if (external) for await (const keys of admin.scanIterator({ MATCH: peer.keyPattern(prefix), COUNT: 1000 })) {
            if (keys.length) await admin.del(keys)
          }
      }
      results[scenario.id][peer.name] = res
      const extra = res.closeMs !== undefined ? `, worker.close ${res.closeMs.toFixed(1)} ms` : ''
      log(`${scenario.id.padEnd(8)} ${peer.name.padEnd(9)} ${res.jobs} jobs in ${res.seconds.toFixed(3)} s = ${fmtRate(res.jobsPerSec)} jobs/s${extra}`)
    }
  }
  // Latency: single adds at a steady rate, enqueue-to-handler-start, each peer on a clean database.
  const latency = {}
  for (const { peer } of peers) {
    if (!external) await admin.flushDb()
    const prefix = `bench-${peer.name}-${RUN_ID}`
    const handle = await peer.open({ url, queue: 'latency', prefix })
    openHandles.add(handle)
    try {
      latency[peer.name] = await measureLatency(handle)
    } finally {
      openHandles.delete(handle)
      await handle.close()
      if (external) for await (const keys of admin.scanIterator({ MATCH: peer.keyPattern(prefix), COUNT: 1000 })) {
          if (keys.length) await admin.del(keys)
        }
    }
    const l = latency[peer.name]
    log(`latency  ${peer.name.padEnd(9)} ${l.n} jobs at ${LATENCY_RATE}/s: p50 ${l.p50} ms, p99 ${l.p99} ms, max ${l.max} ms`)
  }
  // RSS: each peer's worker alone in a child process.
  const rss = {}
  for (const { peer } of peers) {
    if (!external) await admin.flushDb()
    const prefix = `bench-${peer.name}-${RUN_ID}`
    rss[peer.name] = await measureRss(peer, { url, prefix, queue: 'rss' }, items)
    if (external) for await (const keys of admin.scanIterator({ MATCH: peer.keyPattern(prefix), COUNT: 1000 })) {
        if (keys.length) await admin.del(keys)
      }
    log(`rss      ${peer.name.padEnd(9)} worker process idle ${rss[peer.name].idleMb} MB, peak while draining ${N} jobs ${rss[peer.name].loadMb} MB`)
  }
  if (!external) await admin.flushDb()

  // Table: scenario | <peer> jobs/s ... | baseline/<other> ...
  const others = peers.map((p) => p.peer.name).filter((name) => name !== BASELINE)
  const header = ['scenario', ...peers.map((p) => `${p.peer.name} jobs/s`), ...others.map((o) => `ratio ${BASELINE}/${o}`)]
  const rows = SCENARIOS.map((s) => {
    const r = results[s.id]
    return [
      s.label,
      ...peers.map((p) => fmtRate(r[p.peer.name].jobsPerSec)),
      ...others.map((o) => `${(r[BASELINE].jobsPerSec / r[o].jobsPerSec).toFixed(2)}x`),
    ]
  })
  const describePeer = ({ peer, info }) =>
    `${peer.name} ${info.version ?? '?'}${info.commit ? ` (${info.commit})` : ''}${info.driver ? ` on ${info.driver} ${info.driverVersion ?? ''}`.trimEnd() : ''}`
  process.stdout.write(`N=${N}, redis ${redisInfo.redis_version}, node ${process.version}, ${os.cpus().length} cpus; ${peers.map(describePeer).join(', ')}\n`)
  printTable(header, rows)
  if (!external) {
    printTable(
      ['Redis bytes per job', 'waiting (after addBulk)', 'after the drain'],
      peers.map(({ peer }) => [peer.name, String(results.addBulk[peer.name].redisBytesPerJob), String(results.drain[peer.name].redisBytesPerJob)]),
    )
  }
  printTable(
    [`latency at ${LATENCY_RATE} jobs/s (ms)`, 'p50', 'p99', 'max'],
    peers.map(({ peer }) => [peer.name, ...['p50', 'p99', 'max'].map((k) => latency[peer.name][k].toFixed(2))]),
  )
  printTable(
    ['worker process RSS (MB)', 'idle', 'peak while draining'],
    peers.map(({ peer }) => [peer.name, String(rss[peer.name].idleMb), String(rss[peer.name].loadMb)]),
  )

  const out = {
    date: new Date().toISOString(),
    n: N,
    batchSize: BATCH,
    concurrency: CONCURRENCY,
    payload: { example: JSON.stringify(items[Math.min(123, N - 1)]), avgBytes: avgPayloadBytes },
    node: process.version,
    redis: redisInfo.redis_version,
    redisServer: external ? 'external (REDIS_URL)' : 'throwaway redis-server, --save "" --appendonly no',
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0] ? os.cpus()[0].model : null,
    platform: `${process.platform}-${process.arch}`,
    peers: Object.fromEntries(peers.map((p) => [p.peer.name, p.info])),
    latency: { rate: LATENCY_RATE, ...latency },
    rss,
    scenarios: Object.fromEntries(
      SCENARIOS.map((s) => [
        s.id,
        {
          label: s.label,
          ...Object.fromEntries(
            peers.map((p) => {
              const r = results[s.id][p.peer.name]
              return [p.peer.name, { jobs: r.jobs, jobsPerSec: Math.round(r.jobsPerSec), seconds: r.seconds, redisBytesPerJob: r.redisBytesPerJob, ...(r.closeMs !== undefined && { closeMs: r.closeMs }) }]
            }),
          ),
          ratios: Object.fromEntries(others.map((o) => [`${BASELINE}/${o}`, +(results[s.id][BASELINE].jobsPerSec / results[s.id][o].jobsPerSec).toFixed(3)])),
        },
      ]),
    ),
  }
  fs.writeFileSync(RESULTS_FILE, JSON.stringify(out, null, 2) + '\n')
  fs.writeFileSync(CHART_FILE, require('./chart').render(out))
  log(`wrote ${path.relative(process.cwd(), RESULTS_FILE) || RESULTS_FILE} and ${path.relative(process.cwd(), CHART_FILE) || CHART_FILE}`)
}

async function closeAll() {
  for (const h of [...openHandles].reverse()) {
    openHandles.delete(h)
    try {
      await h.close()
    } catch {}
  }
}

main().then(
  async () => {
    await closeAll()
    cleanupSync()
    // Everything is closed: the process should now exit by itself. If a library still holds the
    // event loop open, say what and fail instead of hanging.
    setTimeout(() => {
      const handles = (process._getActiveHandles?.() ?? []).map((h) => {
        const name = h?.constructor?.name ?? typeof h
        return h && h.remotePort ? `${name} to port ${h.remotePort}` : h && h._handle && h._handle.fd !== undefined ? `${name} fd ${h._handle.fd}` : name
      })
      log(`FAILED: the process did not exit by itself 10 s after closing everything; open handles: ${handles.join(', ') || 'unknown'}`)
      process.exit(3)
    }, 10_000).unref()
  },
  async (err) => {
    log(`FAILED: ${err instanceof BenchFailure ? err.message : err && err.stack ? err.stack : err}`)
    process.exitCode = 1
    await closeAll()
    cleanupSync()
    setTimeout(() => process.exit(1), 5_000).unref()
  },
)
