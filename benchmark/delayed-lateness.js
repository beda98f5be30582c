#!/usr/bin/env node
'use strict'
// How late delayed jobs start: adds BENCH_N (default 200) jobs one at a time, each due 100-300 ms
// later, to an idle worker per mode, and reports start minus due time (p50 / p99 / max, ms).
//   node benchmark/delayed-lateness.js     # a throwaway redis-server, or REDIS_URL
const { ReliableQueue } = require('..')
const { RedisServer } = require('../scripts/redis-server')

const N = Number(process.env.BENCH_N || 200)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]

async function run(url, mode) {
  const queue = new ReliableQueue(`lateness-${mode}-${Date.now()}`, { url, mode })
  const late = []
  const worker = queue.process(async (job) => {
    late.push(Date.now() - job.data.due)
  })
  for (let i = 0; i < N; i++) {
    const delayMs = 100 + Math.floor(Math.random() * 200)
    await queue.add({ due: Date.now() + delayMs }, { delayMs })
    await sleep(10)
  }
  while (late.length < N) await sleep(20)
  await worker.close()
  await queue.close()
  late.sort((a, b) => a - b)
  return { mode, n: N, p50: pct(late, 50), p99: pct(late, 99), max: late[late.length - 1] }
}

;(async () => {
  const server = process.env.REDIS_URL ? null : await RedisServer.start()
  const url = process.env.REDIS_URL || server.url
  try {
    for (const mode of ['stream', 'list']) console.log(JSON.stringify(await run(url, mode)))
  } finally {
    if (server) await server.close()
  }
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
