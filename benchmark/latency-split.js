#!/usr/bin/env node
'use strict'
// Where holdfast's enqueue-to-handler latency goes: the add or the delivery. One holdfast
// stream-mode worker (concurrency 100) on a throwaway redis-server, fed at BENCH_LATENCY_RATE
// (1000/s) in turn by holdfast's `add` and by node-redis `XADD`s of the same JSON in the `d`
// field (a valid job, written from the JS thread like a hand-rolled producer's), BENCH_ROUNDS (3)
// rounds of BENCH_N (3000) jobs each. If the two give the same latency, the add path is not
// what separates holdfast from a hand-rolled loop; the delivery (tokio -> JS) is.
//
//   node benchmark/latency-split.js

const { createClient } = require('redis')
const { ReliableQueue } = require('..')
const { RedisServer } = require('../scripts/redis-server')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const now = () => Number(process.hrtime.bigint()) / 1e6
const N = Number(process.env.BENCH_N || 3000)
const RATE = Number(process.env.BENCH_LATENCY_RATE || 1000)
const ROUNDS = Number(process.env.BENCH_ROUNDS || 3)

async function run(producer, url) {
  const name = `split${Math.random().toString(36).slice(2)}`
  const queue = new ReliableQueue(name, { url })
  const client = createClient({ url })
  await client.connect()
  const lat = []
  let finish
  const done = new Promise((r) => (finish = r))
  const worker = queue.process(async (job) => {
    lat.push(now() - job.data.sent)
    if (lat.length === N) finish()
  }, { concurrency: 100 })
  try {
    await sleep(300) // let the worker connect and block on its read
    const start = now()
    const adds = []
    for (let i = 0; i < N; i++) {
      const wait = start + (i * 1000) / RATE - now()
      if (wait > 1) await sleep(wait)
      const data = { n: i, sent: now() }
      adds.push(producer === 'holdfast add' ? queue.add(data) : client.xAdd(`holdfast:{${name}}:stream`, '*', { d: JSON.stringify(data) }))
    }
    await Promise.all(adds)
    await done
  } finally {
    await worker.close()
    await queue.close()
    await client.quit()
  }
  lat.sort((a, b) => a - b)
  const at = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(3)
  return `${producer.padEnd(16)} p50 ${at(0.5)} ms  p90 ${at(0.9)} ms  p99 ${at(0.99)} ms`
}

async function main() {
  const server = await RedisServer.start()
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (const producer of ['holdfast add', 'node-redis XADD']) console.log(`round ${r + 1}: ${await run(producer, server.url)}`)
    }
  } finally {
    await server.stop()
  }
}

main().catch((e) => {
  process.stderr.write(`latency-split: ${e && e.stack ? e.stack : e}\n`)
  process.exit(1)
})
