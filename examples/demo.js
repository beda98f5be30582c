'use strict'
// `npm run demo`: enqueue jobs, SIGKILL a worker mid-flight, watch a second worker finish every
// job anyway. Uses REDIS_URL when set, else starts a throwaway redis-server.
const { fork } = require('node:child_process')
const path = require('node:path')
const { ReliableQueue } = require('..')
const { RedisServer } = require('../scripts/redis-server')

const TOTAL = 3000
const children = new Set()

async function main() {
  let server = null
  if (!process.env.REDIS_URL) {
    server = await RedisServer.start()
    process.env.REDIS_URL = server.url
    console.log(`started a throwaway redis-server at ${server.url}`)
  } else {
    console.log(`using REDIS_URL=${process.env.REDIS_URL}`)
  }
  const queue = new ReliableQueue('demo-emails')
  const shutdown = async (signal) => {
    console.log(`\n${signal}: closing gracefully`)
    for (const c of children) c.kill('SIGTERM')
    await queue.close()
    if (server) await server.close()
    process.exit(130)
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)

  const ids = await queue.addBulk(
    Array.from({ length: TOTAL }, (_, i) => ({ to: `user${i}@example.com`, subject: 'Welcome!' })),
  )
  console.log(`enqueued ${ids.length} jobs (one addBulk)`)

  const done = new Map() // job id -> times run
  let stalled = 0
  let lastPrint = 0
  const progress = (label, force = false) => {
    const now = Date.now()
    if (!force && now - lastPrint < 100) return
    lastPrint = now
    const lost = ids.filter((id) => !done.has(id)).length
    process.stdout.write(`\r${label.padEnd(30)} finished ${String(done.size).padStart(5)}/${TOTAL}  still to run ${String(lost).padStart(5)}  recovered ${stalled}   `)
  }
  const startWorker = (label) => {
    const child = fork(path.join(__dirname, 'demo-worker.js'), { env: process.env })
    children.add(child)
    child.on('exit', (code, signal) => {
      children.delete(child)
      if (signal !== 'SIGKILL' && code !== 0) console.log(`\n[${label}] exited unexpectedly (${code ?? signal})`)
    })
    child.on('message', (m) => {
      if (m.done) done.set(m.done, (done.get(m.done) ?? 0) + 1)
      if (m.stalled) stalled++
      if (m.error) console.log(`\n[${label}] error: ${m.error}`)
      if (m.done || m.stalled) progress(label)
    })
    return child
  }

  const first = startWorker('worker A running')
  while (done.size < TOTAL * 0.3) await new Promise((r) => setTimeout(r, 5))
  progress('worker A running', true)
  first.kill('SIGKILL')
  await new Promise((r) => first.once('exit', r))
  const inFlight = (await queue.stats()).active
  console.log(`\nSIGKILLed worker A (pid ${first.pid}) holding ${inFlight} jobs (running or prefetched), never acknowledged`)

  const second = startWorker('worker B (A is dead)')
  const started = Date.now()
  while (ids.some((id) => !done.has(id))) {
    if (Date.now() - started > 60_000) throw new Error('jobs did not finish within 60 s')
    await new Promise((r) => setTimeout(r, 20))
  }
  progress('worker B (A is dead)', true)
  second.kill('SIGTERM') // graceful: finish in-flight, flush acks, exit
  await new Promise((r) => second.once('exit', r))

  const twice = [...done.values()].filter((n) => n > 1).length
  const stats = await queue.stats()
  console.log(`\n\nevery one of ${TOTAL} jobs finished: ${ids.every((id) => done.has(id))}`)
  console.log(`jobs lost: ${ids.filter((id) => !done.has(id)).length}`)
  console.log(`jobs run twice (were mid-flight in A when it died, or finished without their ack landing): ${twice}`)
  console.log(`jobs worker B recovered from dead worker A: ${stalled} (within ~2.5 s: the 2 s visibility timeout)`)
  console.log(`queue now: ${JSON.stringify(stats)} (a killed worker counts until its heartbeat deadline, one visibility timeout)`)
  await queue.close()
  if (server) await server.close()
}

main().catch((err) => {
  console.error(err)
  for (const c of children) c.kill('SIGKILL')
  process.exit(1)
})
