#!/usr/bin/env node
'use strict'
// What idle queues cost: N queues with one idle worker each (concurrency 1) in one process, for
// N = 1, 10, 100 (BENCH_IDLE_QUEUES), each peer on its own throwaway redis-server. After a
// settle time, over a window it reads:
//   commands/s per queue   INFO commandstats (every command, those run inside scripts included)
//   redis CPU %            redis-server's user+system time, /proc/<pid>/stat, of one core
//   node CPU %             the worker process's, likewise
//
//   node benchmark/idle.js                      # every peer, 1/10/100 queues, 10 s windows
//   BENCH_PEERS=holdfast,bullmq BENCH_IDLE_QUEUES=100 node benchmark/idle.js
//   BENCH_IDLE_WINDOW_MS=20000 node benchmark/idle.js
// Prints a table to stdout, a line per point to stderr, and writes benchmark/idle.json and
// benchmark/idle.svg (chart.js).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const { spawn } = require('node:child_process')
const { createClient } = require('redis')
const { RedisServer } = require('../scripts/redis-server')
const { renderIdle } = require('./chart')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const ALL = ['holdfast', 'holdfast-list', 'bullmq', 'bee-queue', 'redis-stream', 'redis-list']
const PEERS = process.env.BENCH_PEERS ? ALL.filter((p) => process.env.BENCH_PEERS.split(',').includes(p)) : ALL
const COUNTS = (process.env.BENCH_IDLE_QUEUES || '1,10,100').split(',').map(Number)
const WINDOW = Number(process.env.BENCH_IDLE_WINDOW_MS || 10_000)
const SETTLE = Number(process.env.BENCH_IDLE_SETTLE_MS || 6_000)
const TICK = 100 // clock ticks per second (getconf CLK_TCK on Linux)

function cpuTicks(pid) {
  // fields after the command name, which is in parentheses and may hold spaces
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(f[11]) + Number(f[12]) // utime, stime
}

async function commandCalls(client) {
  const info = await client.info('commandstats')
  const byCmd = {}
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) byCmd[m[1]] = Number(m[2])
  return byCmd
}

async function point(peer, queues) {
  const server = await RedisServer.start()
  const client = createClient({ url: server.url })
  await client.connect()
  const child = spawn(process.execPath, [path.join(__dirname, 'idle-child.js')], {
    env: { ...process.env, BENCH_PEER: peer, BENCH_URL: server.url, BENCH_QUEUES: String(queues), BENCH_PREFIX: 'idle' },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  try {
    const lines = readline.createInterface({ input: child.stdout })
    await new Promise((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`idle-child exited ${code}`)))
      lines.on('line', (l) => JSON.parse(l).ready && resolve())
    })
    await sleep(SETTLE)
    await client.sendCommand(['CONFIG', 'RESETSTAT'])
    const t0 = process.hrtime.bigint()
    const [r0, n0] = [cpuTicks(server.proc.pid), cpuTicks(child.pid)]
    await sleep(WINDOW)
    const byCmd = await commandCalls(client)
    const [r1, n1] = [cpuTicks(server.proc.pid), cpuTicks(child.pid)]
    const secs = Number(process.hrtime.bigint() - t0) / 1e9
    // the measuring client's own INFO / CONFIG calls are not the peer's
    for (const own of ['info', 'config|resetstat', 'config']) delete byCmd[own]
    const total = Object.values(byCmd).reduce((a, b) => a + b, 0)
    const top = Object.entries(byCmd).sort((a, b) => b[1] - a[1]).slice(0, 6)
      .map(([c, n]) => `${c} ${(n / secs / queues).toFixed(2)}`).join(', ')
    return {
      peer,
      queues,
      commandsPerSecPerQueue: +(total / secs / queues).toFixed(2),
      redisCpuPct: +(((r1 - r0) / TICK / secs) * 100).toFixed(2),
      nodeCpuPct: +(((n1 - n0) / TICK / secs) * 100).toFixed(2),
      top,
    }
  } finally {
    child.stdin.end()
    child.kill('SIGKILL')
    await client.quit().catch(() => {})
    await server.stop()
  }
}

async function main() {
  const rows = []
  for (const queues of COUNTS) {
    for (const peer of PEERS) {
      const r = await point(peer, queues)
      process.stderr.write(`idle: ${peer} x${queues}: ${r.commandsPerSecPerQueue} cmd/s/queue, redis ${r.redisCpuPct}%, node ${r.nodeCpuPct}% (${r.top})\n`)
      rows.push(r)
    }
  }
  const out = ['| peer | queues | commands/s per queue | redis-server CPU % | node CPU % |', '|---|---:|---:|---:|---:|']
  for (const r of rows) out.push(`| ${r.peer} | ${r.queues} | ${r.commandsPerSecPerQueue} | ${r.redisCpuPct} | ${r.nodeCpuPct} |`)
  process.stdout.write(out.join('\n') + '\n')
  const result = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, window_ms: WINDOW, rows }
  fs.writeFileSync(path.join(__dirname, 'idle.json'), JSON.stringify(result, null, 2) + '\n')
  fs.writeFileSync(path.join(__dirname, 'idle.svg'), renderIdle(result))
}

main().catch((e) => {
  process.stderr.write(`idle: ${e && e.stack ? e.stack : e}\n`)
  process.exit(1)
})
