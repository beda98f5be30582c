#!/usr/bin/env node
'use strict'
// holdfast alone: drain 100 000 pre-filled jobs with `async (job) => job.data` at concurrency
// 100 and report jobs/s and the node process's CPU time. `node benchmark/drain.js [stream|list]`
const { ReliableQueue } = require('..')
const { RedisServer } = require('../scripts/redis-server')

;(async () => {
  const server = process.env.REDIS_URL ? null : await RedisServer.start()
  const url = process.env.REDIS_URL || server.url
  const mode = process.argv[2] || 'stream'
  const q = new ReliableQueue(`drain-${Date.now()}`, { url, mode })
  const N = Number(process.env.BENCH_N || 100_000)
  const items = Array.from({ length: N }, (_, i) => ({ to: 'user@example.com', n: i, t: 'welcome' }))
  for (let i = 0; i < N; i += 1000) await q.addBulk(items.slice(i, i + 1000))
  let n = 0
  let done
  const finished = new Promise((r) => (done = r))
  const t0 = process.hrtime.bigint()
  const c0 = process.cpuUsage()
  const w = q.process(async (job) => {
    if (++n === N) done()
    return job.data
  }, { concurrency: 100, prefetch: process.env.PREFETCH === undefined ? undefined : Number(process.env.PREFETCH) })
  await finished
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(c0)
  console.log(JSON.stringify({ mode, n: N, jobsPerSec: Math.round(N / secs), seconds: +secs.toFixed(3), nodeCpuSeconds: +((cpu.user + cpu.system) / 1e6).toFixed(2) }))
  await w.close()
  await q.close()
  if (server) await server.close()
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
