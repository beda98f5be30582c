#!/usr/bin/env node
'use strict'
// Crash recovery, side by side, each library with its default options: how long the jobs of a
// SIGKILLed worker wait before another worker, already running, starts them.
//
//   node benchmark/recovery.js            # every peer, RECOVERY_ROUNDS (3) rounds each
//   RECOVERY_PEERS=bullmq node benchmark/recovery.js
//
// Each round, on a fresh throwaway redis-server: a victim worker process (recovery-victim.js)
// takes JOBS (8) jobs and never finishes them; a rescuer worker starts in this process and runs
// for SETTLE_MS (3000) so it is in steady state; the victim is SIGKILLed; the clock runs from the
// kill until the rescuer has started every job (or gives up after 120 s). bee-queue recovers
// only when someone calls checkStalledJobs(): the rescuer does, every 5000 ms (its stallInterval,
// as its README suggests).
const { spawn } = require('node:child_process')
const path = require('node:path')
const readline = require('node:readline')
const { RedisServer } = require('../scripts/redis-server')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const JOBS = 8
const SETTLE_MS = 3000
const GIVE_UP_MS = 120_000
const ROUNDS = Number(process.env.RECOVERY_ROUNDS || 3)
const ALL = ['holdfast-stream', 'holdfast-list', 'bullmq', 'bee-queue']
const PEERS = process.env.RECOVERY_PEERS ? process.env.RECOVERY_PEERS.split(',') : ALL

/** Adds JOBS jobs and starts a rescuer; returns { add(), startRescuer(onStart), close() }. */
async function open(peer, url, queue) {
  if (peer.startsWith('holdfast-')) {
    const { ReliableQueue } = require('..')
    const q = new ReliableQueue(queue, { url, mode: peer.slice('holdfast-'.length) })
    return {
      add: () => q.addBulk(Array.from({ length: JOBS }, (_, n) => ({ n }))),
      startRescuer: (onStart) => q.process(async (job) => onStart(job.data.n), { concurrency: JOBS }),
      close: () => q.close({ timeoutMs: 2000 }),
    }
  }
  if (peer === 'bullmq') {
    const { Queue, Worker } = require('bullmq')
    const IORedis = require('ioredis')
    const conns = []
    const connect = () => {
      const c = new IORedis(url, { maxRetriesPerRequest: null })
      c.on('error', () => {})
      conns.push(c)
      return c
    }
    const q = new Queue(queue, { connection: connect() })
    let w = null
    return {
      add: () => q.addBulk(Array.from({ length: JOBS }, (_, n) => ({ name: 'job', data: { n } }))),
      startRescuer: (onStart) => {
        w = new Worker(queue, async (job) => onStart(job.data.n), { connection: connect(), concurrency: JOBS })
        w.on('error', () => {})
      },
      close: async () => {
        if (w) await w.close(true)
        await q.close()
        for (const c of conns) c.disconnect()
      },
    }
  }
  if (peer === 'bee-queue') {
    const Queue = require('bee-queue')
    const producer = new Queue(queue, { redis: { url }, isWorker: false })
    await producer.ready()
    let w = null
    return {
      add: () => producer.saveAll(Array.from({ length: JOBS }, (_, n) => producer.createJob({ n }))),
      startRescuer: (onStart) => {
        w = new Queue(queue, { redis: { url } })
        w.on('error', () => {})
        w.process(JOBS, async (job) => onStart(job.data.n))
        w.checkStalledJobs(5000)
      },
      close: async () => { if (w) await w.close(1000).catch(() => {}); await producer.close() },
    }
  }
  throw new Error(`unknown peer ${peer}`)
}

function startVictim(peer, url, queue) {
  const proc = spawn(process.execPath, [path.join(__dirname, 'recovery-victim.js')], {
    env: { ...process.env, PEER: peer, URL: url, QUEUE: queue, CONCURRENCY: String(JOBS) },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const lines = []
  readline.createInterface({ input: proc.stdout }).on('line', (l) => { try { lines.push(JSON.parse(l)) } catch {} })
  const exited = new Promise((r) => proc.once('exit', r))
  return { proc, lines, exited }
}

async function until(what, fn, ms) {
  const deadline = Date.now() + ms
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

async function round(peer) {
  const server = await RedisServer.start()
  const queue = `recovery-${Date.now()}`
  const victim = startVictim(peer, server.url, queue)
  let lib = null
  try {
    await until('the victim', () => victim.lines.some((m) => m.ready), 20_000)
    lib = await open(peer, server.url, queue)
    await lib.add()
    await until('the victim to start every job', () => victim.lines.filter((m) => m.started !== undefined).length >= JOBS, 20_000)
    const started = new Map()
    lib.startRescuer((n) => { if (!started.has(n)) started.set(n, Date.now()) })
    await sleep(SETTLE_MS)
    if (started.size > 0) throw new Error(`${peer}: the rescuer took ${started.size} jobs before the kill`)
    victim.proc.kill('SIGKILL')
    await victim.exited
    const killedAt = Date.now()
    const deadline = killedAt + GIVE_UP_MS
    while (started.size < JOBS && Date.now() < deadline) await sleep(10)
    const waits = [...started.values()].map((t) => (t - killedAt) / 1000)
    return { recovered: started.size, first: Math.min(...waits), last: started.size === JOBS ? Math.max(...waits) : null }
  } finally {
    victim.proc.kill('SIGKILL')
    if (lib) await lib.close().catch(() => {})
    await server.close()
  }
}

;(async () => {
  const results = {}
  for (const peer of PEERS) {
    results[peer] = []
    for (let i = 0; i < ROUNDS; i++) {
      const r = await round(peer)
      results[peer].push(r)
      process.stderr.write(`${peer} round ${i + 1}: ${r.recovered}/${JOBS} recovered, first after ${r.first.toFixed(2)} s, last after ${r.last === null ? `more than ${GIVE_UP_MS / 1000} s` : `${r.last.toFixed(2)} s`}\n`)
    }
  }
  const rows = PEERS.map((peer) => {
    const lasts = results[peer].map((r) => r.last)
    const fmt = (v) => (v === null ? `>${GIVE_UP_MS / 1000}` : v.toFixed(1))
    return `| ${peer} | ${lasts.map(fmt).join(' / ')} |`
  })
  console.log(`| peer | seconds from SIGKILL until all ${JOBS} jobs started elsewhere (per round) |\n|---|---|\n${rows.join('\n')}`)
  console.log(JSON.stringify(results))
  const short = Object.entries(results).filter(([, rs]) => rs.some((r) => r.recovered < JOBS))
  if (short.length > 0) {
    console.error(`not every job was recovered: ${short.map(([p]) => p).join(', ')}`)
    process.exit(1)
  }
  process.exit(0)
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
