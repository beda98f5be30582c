#!/usr/bin/env node
'use strict'
// Whether many worker processes multiply the scheduler's work. K processes with one worker each
// on one queue (K = 1 and 10, BENCH_SCHED_PROCS), each mode on its own throwaway redis-server;
// this process adds BENCH_N delayed jobs at BENCH_SCHED_RATE per second, each due 0.5 to 1.5 s
// later, waits for the last to be due plus 2 s, and reads INFO commandstats (commands run inside
// scripts included) for that window:
//   promote calls / job   GET calls: only promote.lua's lease check GETs in this run
//   zset scans / job      ZRANGEBYSCORE calls: promote.lua scans only for the lease holder
//   commands / job        every command (adds, fetches, acks, heartbeats, schedulers)
//
//   node benchmark/schedulers.js
//   BENCH_N=600 BENCH_SCHED_PROCS=1,4,10 node benchmark/schedulers.js
// Prints a table to stdout and a line per point to stderr.

const path = require('node:path')
const readline = require('node:readline')
const { spawn } = require('node:child_process')
const { createClient } = require('redis')
const { ReliableQueue } = require('..')
const { RedisServer } = require('../scripts/redis-server')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const MODES = (process.env.BENCH_SCHED_MODES || 'stream,list').split(',')
const PROCS = (process.env.BENCH_SCHED_PROCS || '1,10').split(',').map(Number)
const N = Number(process.env.BENCH_N || 300)
const RATE = Number(process.env.BENCH_SCHED_RATE || 30)
const PREFIX = 'sched'
const NAME = 'idle0' // idle-child.js's first queue

async function commandCalls(client) {
  const info = await client.info('commandstats')
  const byCmd = {}
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) byCmd[m[1]] = Number(m[2])
  for (const own of ['info', 'config|resetstat', 'config']) delete byCmd[own]
  return byCmd
}

function startChild(mode, url) {
  const child = spawn(process.execPath, [path.join(__dirname, 'idle-child.js')], {
    env: { ...process.env, BENCH_PEER: mode === 'stream' ? 'holdfast' : `holdfast-${mode}`, BENCH_URL: url, BENCH_QUEUES: '1', BENCH_PREFIX: PREFIX },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const ready = new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`idle-child exited ${code}`)))
    readline.createInterface({ input: child.stdout }).on('line', (l) => JSON.parse(l).ready && resolve())
  })
  return { child, ready }
}

async function point(mode, procs) {
  const server = await RedisServer.start()
  const client = createClient({ url: server.url })
  await client.connect()
  const queue = new ReliableQueue(NAME, { url: server.url, prefix: PREFIX, mode })
  const children = Array.from({ length: procs }, () => startChild(mode, server.url))
  try {
    await Promise.all(children.map((c) => c.ready))
    for (;;) {
      if ((await queue.stats()).workers === procs) break
      await sleep(100)
    }
    await sleep(1000)
    await client.sendCommand(['CONFIG', 'RESETSTAT'])
    const t0 = Date.now()
    let lastDue = 0
    for (let i = 0; i < N; i++) {
      const delayMs = 500 + Math.floor(Math.random() * 1000)
      lastDue = Math.max(lastDue, Date.now() + delayMs)
      await queue.add(i, { delayMs })
      await sleep(Math.max(0, t0 + ((i + 1) * 1000) / RATE - Date.now()))
    }
    await sleep(Math.max(0, lastDue + 2000 - Date.now()))
    const byCmd = await commandCalls(client)
    const secs = (Date.now() - t0) / 1000
    const stats = await queue.stats()
    if (stats.completed !== N) throw new Error(`${stats.completed} of ${N} jobs ran (${JSON.stringify(stats)})`)
    const total = Object.values(byCmd).reduce((a, b) => a + b, 0)
    const per = (n) => +((n || 0) / N).toFixed(2)
    return {
      mode,
      procs,
      promotePerJob: per(byCmd.get),
      scansPerJob: per(byCmd.zrangebyscore),
      commandsPerJob: per(total),
      commandsPerSec: +(total / secs).toFixed(1),
    }
  } finally {
    for (const c of children) {
      c.child.stdin.end()
      c.child.kill('SIGKILL')
    }
    await queue.close().catch(() => {})
    await client.quit().catch(() => {})
    await server.stop()
  }
}

async function main() {
  const rows = []
  for (const mode of MODES) {
    for (const procs of PROCS) {
      const r = await point(mode, procs)
      process.stderr.write(`schedulers: ${mode} x${procs}: ${JSON.stringify(r)}\n`)
      rows.push(r)
    }
  }
  const out = ['| mode | worker processes | promote calls / job | zset scans / job | commands / job | commands/s |', '|---|---:|---:|---:|---:|---:|']
  for (const r of rows) out.push(`| ${r.mode} | ${r.procs} | ${r.promotePerJob} | ${r.scansPerJob} | ${r.commandsPerJob} | ${r.commandsPerSec} |`)
  process.stdout.write(out.join('\n') + '\n')
}

main().catch((e) => {
  process.stderr.write(`schedulers: ${e && e.stack ? e.stack : e}\n`)
  process.exit(1)
})
