#!/usr/bin/env node
'use strict'
// What a job costs Redis: server CPU (INFO cpu, user + system) per job to add it (addBulk) and
// to drain it (a worker at concurrency 100 runs it and cleans up after it), at payloads of
// 45 B, 1 KB, 10 KB and 100 KB, each peer on its own throwaway redis-server.
//
//   node benchmark/cost.js
//   BENCH_PEERS=holdfast,holdfast-list,redis-stream BENCH_COST_SIZES=45,102400 node benchmark/cost.js
// Jobs per point: 20 000 (45 B, 1 KB), 5 000 (10 KB), 1 000 (100 KB); BENCH_COST_SCALE=0.1 for a
// smoke run. Each point runs BENCH_COST_ROUNDS (3) times, the peers in a rotated order each round,
// and reports the median: on a 2-core VM the Redis CPU time of the same work moves with whatever
// else runs (the client itself, the host), so a single run of two peers can differ by 1.5x.
// Prints a table to stdout (us of Redis CPU per job), writes benchmark/cost.json and, with the
// Redis CPU panels, benchmark/cost.svg (chart.js).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { createClient } = require('redis')
const { RedisServer } = require('../scripts/redis-server')
const { renderCost } = require('./chart')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const holdfast = require('./peers/holdfast')
const ALL = [holdfast.stream, holdfast.list, require('./peers/bullmq'), require('./peers/bee-queue'), require('./peers/redis-stream'), require('./peers/redis-list')]
const PEERS = process.env.BENCH_PEERS ? ALL.filter((p) => process.env.BENCH_PEERS.split(',').includes(p.name)) : ALL
const SIZES = (process.env.BENCH_COST_SIZES || '45,1024,10240,102400').split(',').map(Number)
const SCALE = Number(process.env.BENCH_COST_SCALE || 1)
const ROUNDS = Math.max(1, Number(process.env.BENCH_COST_ROUNDS || 3))
const jobsFor = (size) => Math.max(10, Math.round((size >= 102400 ? 1000 : size >= 10240 ? 5000 : 20000) * SCALE))

async function serverCpu(client) {
  const info = await client.info('cpu')
  return Number(/used_cpu_user:([\d.]+)/.exec(info)[1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)[1])
}

async function point(peer, size) {
  const n = jobsFor(size)
  const server = await RedisServer.start()
  const client = createClient({ url: server.url })
  await client.connect()
  const handle = await peer.open({ url: server.url, queue: 'cost', prefix: 'cost' })
  try {
    // a payload of `size` bytes once JSON-encoded: {"i":123,"p":"xxx"}
    const item = (i) => ({ i, p: 'x'.repeat(Math.max(0, size - 14 - String(i).length)) })
    const batch = Math.max(1, Math.min(1000, Math.floor(4_000_000 / size)))
    const c0 = await serverCpu(client)
    for (let i = 0; i < n; i += batch) {
      await handle.addBulk(Array.from({ length: Math.min(batch, n - i) }, (_, j) => item(i + j)))
    }
    const c1 = await serverCpu(client)
    let seen = 0
    let done
    const all = new Promise((r) => (done = r))
    const worker = handle.startWorker({
      concurrency: 100,
      onData: () => ++seen === n && done(),
      onFailed: (e) => { throw e },
      onError: () => {},
    })
    await all
    // cleanup after the last job (acks, trims) is part of the drain
    for (let i = 0; i < 100; i++) {
      const c = await handle.counts()
      if (c.waiting + c.active === 0) break
      await sleep(20)
    }
    await sleep(200)
    const c2 = await serverCpu(client)
    await worker.close()
    const us = (secs) => +((secs * 1e6) / n).toFixed(2)
    return { peer: peer.name, size, jobs: n, addUs: us(c1 - c0), drainUs: us(c2 - c1), totalUs: us(c2 - c0) }
  } finally {
    await handle.close().catch(() => {})
    await client.quit().catch(() => {})
    await server.stop()
  }
}

async function main() {
  for (const p of PEERS) p.describe()
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const rows = []
  for (const size of SIZES) {
    const runs = new Map(PEERS.map((p) => [p.name, []]))
    for (let round = 0; round < ROUNDS; round++) {
      const order = PEERS.map((_, i) => PEERS[(i + round) % PEERS.length])
      for (const peer of order) {
        const r = await point(peer, size)
        process.stderr.write(`cost: ${r.peer} ${size} B x${r.jobs} (round ${round + 1}): add ${r.addUs} us, drain ${r.drainUs} us, total ${r.totalUs} us of Redis CPU per job\n`)
        runs.get(peer.name).push(r)
      }
    }
    for (const peer of PEERS) {
      const rs = runs.get(peer.name)
      const pick = (k) => median(rs.map((r) => r[k]))
      rows.push({ peer: peer.name, size, jobs: rs[0].jobs, rounds: rs.length, addUs: pick('addUs'), drainUs: pick('drainUs'), totalUs: pick('totalUs'), totalRuns: rs.map((r) => r.totalUs) })
    }
  }
  const out = [`| peer | payload | add us/job | drain us/job | total us/job (median of ${ROUNDS}) | total, each round |`, '|---|---:|---:|---:|---:|---|']
  for (const r of rows) out.push(`| ${r.peer} | ${r.size} B | ${r.addUs} | ${r.drainUs} | ${r.totalUs} | ${r.totalRuns.join(' / ')} |`)
  process.stdout.write(out.join('\n') + '\n')
  const result = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, rounds: ROUNDS, rows }
  fs.writeFileSync(path.join(__dirname, 'cost.json'), JSON.stringify(result, null, 2) + '\n')
  fs.writeFileSync(path.join(__dirname, 'cost.svg'), renderCost(result))
}

main().catch((e) => {
  process.stderr.write(`cost: ${e && e.stack ? e.stack : e}\n`)
  process.exit(1)
})
