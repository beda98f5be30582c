#!/usr/bin/env node
'use strict'
// What keeping outcomes costs (keepOutcomeMs, for waitFor / getJob): drain BENCH_N (50 000)
// pre-filled jobs at concurrency 100 with and without it, alternating, ROUNDS (3) times each, on
// one throwaway redis-server; then the Redis memory the kept outcomes hold per job, and how long
// a waitFor takes to hear a job finish in another queue object.
//   node benchmark/outcomes.js [stream|list]
const { ReliableQueue } = require('..')
const { createClient } = require('redis')
const { RedisServer } = require('../scripts/redis-server')

const N = Number(process.env.BENCH_N || 50_000)
const ROUNDS = Number(process.env.ROUNDS || 3)
const mode = process.argv[2] || 'stream'
const KEEP = 3_600_000

async function usedMemory(admin) {
  return Number(/used_memory:(\d+)/.exec(await admin.info('memory'))[1])
}

async function drain(url, keep) {
  const q = new ReliableQueue(`outcomes-${keep ? 'kept' : 'plain'}-${Date.now()}`, { url, mode })
  const items = Array.from({ length: 1000 }, (_, i) => ({ to: 'user@example.com', n: i }))
  for (let i = 0; i < N; i += 1000) await q.addBulk(items.slice(0, Math.min(1000, N - i)), keep ? { keepOutcomeMs: KEEP } : {})
  let n = 0
  let done
  const finished = new Promise((r) => (done = r))
  const t0 = process.hrtime.bigint()
  const w = q.process(async (job) => {
    if (++n === N) done()
    return { sent: true, n: job.data.n }
  }, { concurrency: 100 })
  await finished
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  await w.close()
  await q.close()
  return N / secs
}

;(async () => {
  const server = process.env.REDIS_URL ? null : await RedisServer.start()
  const url = process.env.REDIS_URL || server.url
  const admin = createClient({ url })
  await admin.connect()

  const rates = { plain: [], kept: [] }
  for (let r = 0; r < ROUNDS; r++) {
    rates.plain.push(await drain(url, false))
    rates.kept.push(await drain(url, true))
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

  // memory: the outcomes of N finished jobs, kept (the drains above kept theirs too: flush first)
  await admin.flushDb()
  const before = await usedMemory(admin)
  await drain(url, true)
  const after = await usedMemory(admin)
  const [sample] = await admin.keys('*:outcome:*', { COUNT: 1 })
  const sampleBytes = await admin.memoryUsage(sample)

  // waitFor latency: another queue object waits; the job is added, run and recorded
  const name = `outcomes-wait-${Date.now()}`
  const producer = new ReliableQueue(name, { url, mode, keepOutcomeMs: KEEP })
  const waiter = new ReliableQueue(name, { url, mode })
  const worker = producer.process(async () => 'ok')
  const lat = []
  for (let i = 0; i < 200; i++) {
    const id = `w${i}`
    const waiting = waiter.waitFor(id, { timeoutMs: 10_000 })
    const t0 = process.hrtime.bigint()
    await producer.add(i, { jobId: id })
    await waiting
    lat.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  await worker.close()
  await producer.close()
  await waiter.close()
  lat.sort((a, b) => a - b)

  console.log(
    JSON.stringify({
      mode,
      n: N,
      rounds: ROUNDS,
      drainPlainJobsPerSec: rates.plain.map(Math.round),
      drainKeptJobsPerSec: rates.kept.map(Math.round),
      keptOverPlainMedian: +(median(rates.kept) / median(rates.plain)).toFixed(2),
      redisBytesPerKeptOutcome: Math.round((after - before) / N),
      memoryUsageOfOneOutcomeKey: sampleBytes,
      addToWaitForMs: { p50: +lat[100].toFixed(2), p99: +lat[197].toFixed(2) },
    }),
  )
  await admin.quit()
  if (server) await server.close()
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
