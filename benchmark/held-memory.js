#!/usr/bin/env node
'use strict'
// What a lagging consumer group costs: two groups fan out from one stream, `fast` runs every job
// while `stopped` has no worker, so every entry stays in the stream (it leaves only when every
// group has finished it). On a throwaway redis-server, it prints the stream's MEMORY USAGE and
// the growth of used_memory, per held job. Memory, not time: safe to run on a busy machine.
//
//   node benchmark/held-memory.js                  # 100,000 jobs of a 132-byte JSON payload
//   BENCH_N=10000 BENCH_NOTE_BYTES=1000 node benchmark/held-memory.js

const { createClient } = require('redis')
const { ReliableQueue } = require('..')
const { RedisServer } = require('../scripts/redis-server')

const N = Number(process.env.BENCH_N || 100_000)
const NOTE = Number(process.env.BENCH_NOTE_BYTES || 20)

async function main() {
  const server = await RedisServer.start()
  const client = createClient({ url: server.url })
  await client.connect()
  const opened = []
  const queue = (group) => {
    const q = new ReliableQueue('orders', { url: server.url, group })
    opened.push(q)
    return q
  }
  try {
    const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await client.info('memory'))[1])
    const fast = queue('fast')
    const stopped = queue('stopped')
    // the stopped group exists (a worker made it) but runs nothing
    const stream = 'holdfast:{orders}:stream'
    const brief = stopped.process(async () => {})
    while (!(await client.xInfoGroups(stream).catch(() => [])).some((g) => g.name === 'stopped')) await new Promise((r) => setTimeout(r, 20))
    await brief.close()
    let done = 0
    const worker = fast.process(async () => {
      done++
    })
    const before = await usedMemory()
    const payload = { orderId: 'ord_0000000000', customer: 'cust_00000000', amountCents: 12345, currency: 'EUR', items: 3, note: 'x'.repeat(NOTE) }
    for (let i = 0; i < N; i += 1000) await fast.addBulk(Array.from({ length: Math.min(1000, N - i) }, () => payload))
    while (done < N) await new Promise((r) => setTimeout(r, 50))
    await worker.close()
    const stats = await fast.stats()
    const held = await client.xLen(stream)
    const usage = Number(await client.sendCommand(['MEMORY', 'USAGE', stream, 'SAMPLES', '0']))
    const grown = (await usedMemory()) - before
    const version = /(?:valkey|redis)_version:(\S+)/.exec(await client.info('server'))[1]
    const groups = Object.fromEntries(stats.groups.map((g) => [g.name, { waiting: g.waiting, active: g.active }]))
    console.log(
      JSON.stringify({ server: version, jobs: N, payloadJsonBytes: JSON.stringify(payload).length, heldEntries: held, streamBytes: usage, streamBytesPerJob: Math.round(usage / N), usedMemoryGrowthPerJob: Math.round(grown / N), groups }),
    )
    if (held !== N) throw new Error(`expected all ${N} entries held back by the stopped group, found ${held}`)
  } finally {
    await Promise.all(opened.map((q) => q.close()))
    await client.quit()
    await server.close()
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
