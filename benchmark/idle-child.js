'use strict'
// N idle queues of one peer in one process, one worker each (concurrency 1): benchmark/idle.js
// spawns this and measures while it sits. Prints `{"ready":true}` once every worker started.
// Env: BENCH_PEER, BENCH_URL, BENCH_QUEUES, BENCH_PREFIX.

const holdfast = require('./peers/holdfast')
const PEERS = [holdfast.stream, holdfast.list, require('./peers/bullmq'), require('./peers/bee-queue'), require('./peers/redis-stream'), require('./peers/redis-list')]

async function main() {
  const env = process.env
  const peer = PEERS.find((p) => p.name === env.BENCH_PEER)
  if (!peer) throw new Error(`unknown peer ${env.BENCH_PEER}`)
  peer.describe()
  for (let i = 0; i < Number(env.BENCH_QUEUES); i++) {
    const handle = await peer.open({ url: env.BENCH_URL, queue: `idle${i}`, prefix: env.BENCH_PREFIX })
    handle.startWorker({ concurrency: 1, onData: () => {}, onFailed: () => {}, onError: () => {} })
  }
  process.stdout.write(JSON.stringify({ ready: true }) + '\n')
}

process.stdin.on('end', () => process.exit(2)).resume()
main().catch((e) => {
  process.stderr.write(`idle-child: ${e && e.stack ? e.stack : e}\n`)
  process.exit(1)
})
