#!/usr/bin/env node
'use strict'
// holdfast alone: drain BENCH_N (100 000) pre-filled jobs with `async (job) => job.data` at
// concurrency 100; report jobs/s and CPU per job of this node process (JS thread and tokio
// threads together) and of redis-server, counted over the drain only.
//   node benchmark/drain.js [stream|list]       # PREFETCH=0 turns prefetch off
const { ReliableQueue } = require('..')
const { createClient } = require('redis')
const { RedisServer } = require('../scripts/redis-server')

async function redisCpuSeconds(admin) {
  const info = await admin.info('cpu')
  const get = (k) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)[1])
  return get('used_cpu_user') + get('used_cpu_sys')
}

;(async () => {
  const server = process.env.REDIS_URL ? null : await RedisServer.start()
  const url = process.env.REDIS_URL || server.url
  const mode = process.argv[2] || 'stream'
  const admin = createClient({ url })
  await admin.connect()
  const q = new ReliableQueue(`drain-${Date.now()}`, { url, mode })
  const N = Number(process.env.BENCH_N || 100_000)
  const items = Array.from({ length: 1000 }, (_, i) => ({ to: 'user@example.com', n: i, t: 'welcome' }))
  for (let i = 0; i < N; i += 1000) await q.addBulk(items.slice(0, Math.min(1000, N - i)))
  let n = 0
  let done
  const finished = new Promise((r) => (done = r))
  const r0 = await redisCpuSeconds(admin)
  const t0 = process.hrtime.bigint()
  const c0 = process.cpuUsage()
  const w = q.process(async (job) => {
    if (++n === N) done()
    return job.data
  }, { concurrency: 100, prefetch: process.env.PREFETCH === undefined ? undefined : Number(process.env.PREFETCH) })
  await finished
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(c0)
  const redisCpu = (await redisCpuSeconds(admin)) - r0
  const us = (s) => +((s * 1e6) / N).toFixed(2)
  console.log(JSON.stringify({
    mode,
    n: N,
    jobsPerSec: Math.round(N / secs),
    nodeCpuUsPerJob: us((cpu.user + cpu.system) / 1e6),
    redisCpuUsPerJob: us(redisCpu),
  }))
  await w.close()
  await q.close()
  await admin.quit()
  if (server) await server.close()
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
