'use strict'
// One peer's worker alone in a process, so its RSS is its own: bench.js spawns this, reads
// `{"idleMb":..}` 2 s after the worker starts, fills the queue from its own process, and reads
// `{"loadMb":..,"processed":..}` (the peak while draining) when every job ran here.
// Env: BENCH_PEER, BENCH_URL, BENCH_QUEUE, BENCH_PREFIX, BENCH_EXPECT, BENCH_CONCURRENCY.

const holdfast = require('./peers/holdfast')
const PEERS = [holdfast.stream, holdfast.list, require('./peers/bullmq'), require('./peers/bee-queue'), require('./peers/redis-stream'), require('./peers/redis-list')]

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const mb = (b) => +(b / 1024 / 1024).toFixed(1)
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

async function main() {
  const env = process.env
  const peer = PEERS.find((p) => p.name === env.BENCH_PEER)
  if (!peer) throw new Error(`unknown peer ${env.BENCH_PEER}`)
  peer.describe() // loads the library (and picks the driver) as in the parent
  const expect = Number(env.BENCH_EXPECT)
  const handle = await peer.open({ url: env.BENCH_URL, queue: env.BENCH_QUEUE, prefix: env.BENCH_PREFIX })
  let processed = 0
  let finish
  const done = new Promise((r) => (finish = r))
  const worker = handle.startWorker({
    concurrency: Number(env.BENCH_CONCURRENCY),
    onData: () => {
      if (++processed === expect) finish()
    },
    onFailed: () => {},
    onError: () => {},
  })
  await sleep(2000)
  const idle = process.memoryUsage().rss
  say({ idleMb: mb(idle) })
  let peak = idle
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20)
  await done
  clearInterval(sampler)
  say({ loadMb: mb(peak), processed })
  await worker.close()
  await handle.close()
}

// the parent going away ends this process too
process.stdin.on('end', () => process.exit(2)).resume()
main().then(() => process.exit(0), (e) => {
  process.stderr.write(`rss-child: ${e && e.stack ? e.stack : e}\n`)
  process.exit(1)
})
