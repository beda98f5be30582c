#!/usr/bin/env node
'use strict'
// Worker RSS: this node process with one holdfast queue and worker, idle (2 s after start) and
// its peak while adding and draining BENCH_N (default 100 000) jobs at concurrency 100.
//   node benchmark/rss.js [stream|list]
const { ReliableQueue } = require('..')
const { RedisServer } = require('../scripts/redis-server')

const N = Number(process.env.BENCH_N || 100_000)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const mb = (b) => +(b / 1024 / 1024).toFixed(1)

async function run(url, mode) {
  const q = new ReliableQueue(`rss-${mode}-${Date.now()}`, { url, mode })
  let n = 0
  const w = q.process(async (job) => {
    n++
    return job.data
  }, { concurrency: 100 })
  await sleep(2000)
  global.gc?.()
  const idle = process.memoryUsage().rss
  const items = Array.from({ length: 1000 }, (_, i) => ({ to: 'user@example.com', n: i, t: 'welcome' }))
  let peak = idle
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20)
  for (let i = 0; i < N; i += 1000) await q.addBulk(items)
  while (n < N) await sleep(20)
  clearInterval(sampler)
  await w.close()
  await q.close()
  return { mode, idleRssMb: mb(idle), peakRssUnderLoadMb: mb(peak), jobs: N }
}

;(async () => {
  const server = process.env.REDIS_URL ? null : await RedisServer.start()
  const url = process.env.REDIS_URL || server.url
  try {
    console.log(JSON.stringify(await run(url, process.argv[2] || 'stream')))
  } finally {
    if (server) await server.close()
  }
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
