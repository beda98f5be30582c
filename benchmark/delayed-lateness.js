#!/usr/bin/env node
'use strict'
// How late delayed jobs and retries start: start minus due time (p50 / p99 / max, ms), per mode,
// one worker (concurrency 10), four situations:
//   busy   BENCH_N (200) delayed adds, one every 10 ms, each due 100-300 ms later
//   load   the same while a producer keeps ~1000 immediate jobs a second flowing to the worker
//   idle   the worker has rested (nothing for 8 s: one heartbeat per 5 s, no polling), then
//          BENCH_IDLE_N (20) delayed adds 300-800 ms apart, each due 100-300 ms later: what wakes
//          it is the queue's pub/sub channel
//   retry  likewise on a rested worker, jobs that fail their first attempt with a fixed 200 ms
//          backoff: the second attempt's start minus (the failure + 200 ms)
//   node benchmark/delayed-lateness.js     # a throwaway redis-server, or REDIS_URL
//   BENCH_N=5 BENCH_IDLE_N=2 BENCH_REST_MS=200 node benchmark/delayed-lateness.js   # smoke run
const { ReliableQueue } = require('..')
const { RedisServer } = require('../scripts/redis-server')

const N = Number(process.env.BENCH_N || 200)
const IDLE_N = Number(process.env.BENCH_IDLE_N || 20)
const REST_MS = Number(process.env.BENCH_REST_MS || 8000)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]
const dueIn = () => 100 + Math.floor(Math.random() * 200)

async function run(url, mode, situation) {
  const queue = new ReliableQueue(`lateness-${mode}-${situation}-${Date.now()}`, { url, mode })
  const late = []
  const failedAt = new Map()
  const worker = queue.process(
    async (job) => {
      if (job.data.busy) return
      if (job.data.retry) {
        if (job.attempt === 1) {
          failedAt.set(job.id, Date.now())
          throw new Error('first attempt fails')
        }
        late.push(Date.now() - (failedAt.get(job.id) + 200))
        return
      }
      late.push(Date.now() - job.data.due)
    },
    { concurrency: 10, maxAttempts: 2, backoff: { type: 'fixed', delayMs: 200 } },
  )
  worker.on('error', () => {})
  let producing = situation === 'load'
  const producer = (async () => {
    while (producing) {
      await queue.addBulk(Array.from({ length: 10 }, () => ({ busy: true })))
      await sleep(10)
    }
  })()
  const n = situation === 'idle' || situation === 'retry' ? IDLE_N : N
  if (situation === 'idle' || situation === 'retry') await sleep(REST_MS)
  for (let i = 0; i < n; i++) {
    if (situation === 'retry') {
      await queue.add({ retry: true })
    } else {
      const delayMs = dueIn()
      await queue.add({ due: Date.now() + delayMs }, { delayMs })
    }
    await sleep(situation === 'idle' || situation === 'retry' ? 300 + Math.random() * 500 : 10)
  }
  const deadline = Date.now() + 30_000
  while (late.length < n) {
    if (Date.now() > deadline) throw new Error(`${mode} ${situation}: ${late.length} of ${n} jobs started within 30 s`)
    await sleep(20)
  }
  producing = false
  await producer
  await worker.close()
  await queue.close()
  late.sort((a, b) => a - b)
  return { mode, situation, n, p50: pct(late, 50), p99: pct(late, 99), max: late[late.length - 1] }
}

;(async () => {
  const server = process.env.REDIS_URL ? null : await RedisServer.start()
  const url = process.env.REDIS_URL || server.url
  try {
    for (const mode of ['stream', 'list']) {
      for (const situation of ['busy', 'load', 'idle', 'retry']) console.log(JSON.stringify(await run(url, mode, situation)))
    }
  } finally {
    if (server) await server.close()
  }
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
