#!/usr/bin/env node
'use strict'
// What the ways of reaching Redis cost, holdfast alone, in one run (ratios, not absolutes, are
// the point: each row is compared with its own baseline in the same run):
//   - plain TCP against TLS, on one redis-server that listens on both (so only the link differs);
//   - a queue on a Redis Cluster (3 masters) against a single node;
//   - durable adds: `{ replicas: 1 }` on a master with one replica, and `{ fsync: true }` on a
//     Valkey 8.1 with `appendonly yes` (appendfsync always, then everysec), each against the same
//     server without `durable`.
// Throughput rows: addBulk (N jobs in batches of 1000) and drain (N jobs, concurrency 100), in
// stream and list mode. Durable rows: adds one at a time (each awaited) and addBulk.
//
//   npm run bench:deployments               # release build, N=50000; BENCH_SERIAL_N=1000 single adds
//   BENCH_N=500 BENCH_SERIAL_N=20 node benchmark/deployments.js   # smoke run
const { execFileSync } = require('node:child_process')
const os = require('node:os')
const { ReliableQueue } = require('..')
const { RedisServer, freePort } = require('../scripts/redis-server')
const { makeCerts } = require('../__test__/helpers/tls')
const { startCluster } = require('../__test__/helpers/cluster')

const N = Number(process.env.BENCH_N || 50_000)
const SERIAL_N = Number(process.env.BENCH_SERIAL_N || 1000)
const BATCH = 1000
const MODES = ['stream', 'list']
let run = 0
const log = (s) => process.stderr.write(`${s}\n`)
const items = Array.from({ length: BATCH }, (_, i) => ({ to: 'user@example.com', n: i, t: 'welcome' }))

async function timed(fn) {
  const t0 = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - t0) / 1e9
}

async function addBulk(queue, n) {
  const secs = await timed(async () => {
    for (let i = 0; i < n; i += BATCH) await queue.addBulk(items.slice(0, Math.min(BATCH, n - i)))
  })
  return n / secs
}

async function drain(queue, n) {
  await addBulk(queue, n)
  let ran = 0
  let done
  const finished = new Promise((r) => (done = r))
  let worker
  const secs = await timed(async () => {
    worker = queue.process(async (job) => {
      if (++ran === n) done()
      return job.data
    }, { concurrency: 100 })
    await finished
  })
  await worker.close()
  return n / secs
}

async function serialAdds(queue, n) {
  const secs = await timed(async () => {
    for (let i = 0; i < n; i++) await queue.add(items[i % BATCH])
  })
  return n / secs
}

/** addBulk and drain in both modes for one way of connecting. */
async function throughput(label, options) {
  const out = {}
  for (const mode of MODES) {
    const queue = new ReliableQueue(`deploy-${process.pid}-${++run}`, { ...options, mode })
    out[mode] = { addBulk: await addBulk(queue, N) }
    await queue.close()
    const q2 = new ReliableQueue(`deploy-${process.pid}-${++run}`, { ...options, mode })
    out[mode].drain = await drain(q2, N)
    await q2.close()
    log(`${label.padEnd(22)} ${mode.padEnd(6)} addBulk ${Math.round(out[mode].addBulk)} jobs/s, drain ${Math.round(out[mode].drain)} jobs/s`)
  }
  return out
}

/** Single adds and addBulk (stream mode) with and without `durable`. */
async function durableCost(label, options, durable, serialN) {
  const out = {}
  for (const [which, extra] of [['off', {}], ['on', { durable }]]) {
    const queue = new ReliableQueue(`deploy-${process.pid}-${++run}`, { ...options, ...extra })
    await queue.add('warm-up') // connect (and, with durable, probe) before timing
    out[which] = { single: await serialAdds(queue, serialN), bulk: await addBulk(queue, Math.min(N, 20_000)) }
    await queue.close()
  }
  log(`${label.padEnd(34)} single adds ${Math.round(out.off.single)} -> ${Math.round(out.on.single)}/s, addBulk ${Math.round(out.off.bulk)} -> ${Math.round(out.on.bulk)} jobs/s`)
  return out
}

function valkeyBin() {
  const lines = execFileSync('bash', ['scripts/servers.sh'], { cwd: `${__dirname}/..`, encoding: 'utf8' }).trim().split('\n')
  return lines.map((l) => l.split(' ')).find(([name]) => name.startsWith('valkey'))[1]
}

async function withServerBin(bin, fn) {
  const before = process.env.REDIS_SERVER_BIN
  process.env.REDIS_SERVER_BIN = bin
  try {
    return await fn()
  } finally {
    if (before === undefined) delete process.env.REDIS_SERVER_BIN
    else process.env.REDIS_SERVER_BIN = before
  }
}

const ratio = (a, b) => `${(a / b).toFixed(2)}x`
const rate = (x) => Math.round(x).toLocaleString('en-US')

;(async () => {
  delete process.env.REDIS_URL // every server here is a throwaway one
  log(`N=${N}, single adds=${SERIAL_N}, cpus=${os.cpus().length}, node ${process.version}`)
  const rows = []

  // TLS against plain TCP: one server, both ports
  const certs = makeCerts()
  const tlsPort = await freePort()
  const server = await RedisServer.start({ args: certs.serverArgs(tlsPort) })
  const plain = await throughput('plain TCP', { url: server.url })
  const tls = await throughput('TLS', { url: `rediss://localhost:${tlsPort}`, tls: { ca: certs.ca } })
  await server.close()
  certs.close()
  for (const mode of MODES) {
    rows.push([`TLS / plain TCP, ${mode}`, `${rate(tls[mode].addBulk)} / ${rate(plain[mode].addBulk)}`, ratio(tls[mode].addBulk, plain[mode].addBulk),
      `${rate(tls[mode].drain)} / ${rate(plain[mode].drain)}`, ratio(tls[mode].drain, plain[mode].drain)])
  }

  // Cluster against a single node
  const single = await RedisServer.start()
  const one = await throughput('single node', { url: single.url })
  await single.close()
  const cluster = await startCluster(3, 0)
  const many = await throughput('cluster (3 masters)', { cluster: cluster.seeds })
  await cluster.close()
  for (const mode of MODES) {
    rows.push([`cluster / single node, ${mode}`, `${rate(many[mode].addBulk)} / ${rate(one[mode].addBulk)}`, ratio(many[mode].addBulk, one[mode].addBulk),
      `${rate(many[mode].drain)} / ${rate(one[mode].drain)}`, ratio(many[mode].drain, one[mode].drain)])
  }

  console.log(`| ${N} jobs, holdfast alone | addBulk jobs/s | ratio | drain jobs/s | ratio |`)
  console.log('|---|---|---|---|---|')
  for (const r of rows) console.log(`| ${r.join(' | ')} |`)

  // Durable adds
  const durableRows = []
  const master = await RedisServer.start({ args: ['--repl-diskless-sync-delay', '0'] })
  const replica = await RedisServer.start({ args: ['--replicaof', '127.0.0.1', String(master.port)] })
  durableRows.push(['`{ replicas: 1 }`, Redis 7.0 + 1 replica', await durableCost('replicas: 1', { url: master.url }, { replicas: 1 }, SERIAL_N)])
  await replica.close()
  await master.close()
  const valkey = valkeyBin()
  for (const fsync of ['always', 'everysec']) {
    const aof = await withServerBin(valkey, () => RedisServer.start({ args: ['--appendonly', 'yes', '--appendfsync', fsync] }))
    // with everysec, WAITAOF waits for the once-a-second fsync: a few adds show it
    const n = fsync === 'everysec' ? Math.min(SERIAL_N, 20) : SERIAL_N
    durableRows.push([`\`{ fsync: true }\`, Valkey 8.1, appendfsync ${fsync}`, await durableCost(`fsync: true (${fsync})`, { url: aof.url }, { fsync: true }, n)])
    await aof.close()
  }
  console.log('')
  console.log('| durable adds, stream mode | single adds/s, off -> on | ratio | addBulk jobs/s, off -> on | ratio |')
  console.log('|---|---|---|---|---|')
  for (const [label, r] of durableRows) {
    console.log(`| ${label} | ${rate(r.off.single)} -> ${rate(r.on.single)} | ${ratio(r.on.single, r.off.single)} | ${rate(r.off.bulk)} -> ${rate(r.on.bulk)} | ${ratio(r.on.bulk, r.off.bulk)} |`)
  }
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
