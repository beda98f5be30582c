'use strict'
// Redis Sentinel from JS: the `sentinel` option, both modes, through a failover: a master, a
// replica and a sentinel; the master is SIGKILLed while a producer adds (durably, retrying each
// failed add with its jobId) and a worker runs. Both carry on by themselves and every job runs.
// crates/core/tests/sentinel.rs does the same with three sentinels (quorum 2).
const test = require('node:test')
const assert = require('node:assert/strict')
const { createClient } = require('redis')
const { ReliableQueue } = require('..')
const { RedisServer, uniqueName, waitFor, MODES, failoverRun } = require('./helpers/redis-server')

const MASTER = 'holdfast-js-test'

async function connect(url) {
  const client = createClient({ url })
  client.on('error', () => {})
  await client.connect()
  return client
}

async function sentinelMaster(client) {
  const flat = await client.sendCommand(['SENTINEL', 'MASTER', MASTER])
  const out = {}
  for (let i = 0; i < flat.length; i += 2) out[flat[i]] = flat[i + 1]
  return out
}

test('workers and producers follow a Sentinel failover in both modes; every durable add runs', async (t) => {
  const master = await RedisServer.start({ args: ['--repl-diskless-sync-delay', '0'] })
  const replica = await RedisServer.start({ args: ['--repl-diskless-sync-delay', '0', '--replicaof', '127.0.0.1', String(master.port)] })
  const onMaster = await connect(master.url)
  await waitFor(async () => {
    await onMaster.set('holdfast-test-probe', '1')
    return (await onMaster.sendCommand(['WAIT', '1', '100'])) === 1
  }, 20_000, 'the replica to ack')
  onMaster.destroy()
  const sentinel = await RedisServer.start({
    sentinel: `sentinel monitor ${MASTER} 127.0.0.1 ${master.port} 1\n` +
      `sentinel down-after-milliseconds ${MASTER} 1000\nsentinel failover-timeout ${MASTER} 5000\n`,
  })
  const onSentinel = await connect(sentinel.url)
  t.after(async () => {
    onSentinel.destroy()
    for (const s of [sentinel, replica, master]) await s.close()
  })
  await waitFor(async () => (await sentinelMaster(onSentinel))['num-slaves'] === '1', 20_000, 'the sentinel to see the replica')

  const N = 200
  const runs = MODES.map((mode) => {
    const queue = new ReliableQueue(uniqueName('sentinel'), {
      url: 'redis://unused.invalid:1', // the sentinel says where the master is
      sentinel: { masterName: MASTER, nodes: [`127.0.0.1:${sentinel.port}`] },
      durable: { replicas: 1, timeoutMs: 500 },
      mode,
    })
    t.after(() => queue.close())
    return failoverRun(queue, mode, N)
  })

  await waitFor(() => runs.every((r) => r.added >= N / 2), 30_000, 'half the adds')
  await master.stop()
  await waitFor(async () => (await sentinelMaster(onSentinel)).port === String(replica.port), 30_000, 'the failover')
  // the old master comes back empty and is made a replica of the new one: durable adds resume
  await master.restart()

  for (const run of runs) {
    await run.producer
    await waitFor(() => run.seen.size >= N, 30_000, `every ${run.mode} job to run`)
    await run.worker.close()
    for (let i = 0; i < N; i++) assert.ok(run.seen.has(`${run.mode}-${i}`), `${run.mode}-${i} never ran`)
    t.diagnostic(`${run.mode}: adds refused, then retried: ${JSON.stringify(run.refused)}`)
  }
})

test('bad sentinel options throw ERR_HOLDFAST_INVALID_ARGUMENT with the reason', () => {
  const INVALID = { code: 'ERR_HOLDFAST_INVALID_ARGUMENT' }
  const make = (sentinel) => new ReliableQueue('q', { sentinel })
  assert.throws(() => make({ nodes: ['h:1'] }), { ...INVALID, message: /sentinel.masterName/ })
  assert.throws(() => make({ masterName: 'm', nodes: [] }), { ...INVALID, message: /sentinel.nodes/ })
  assert.throws(() => make({ masterName: 'm', nodes: 'h:1' }), { ...INVALID, message: /sentinel.nodes/ })
  assert.throws(() => make({ masterName: 'm', nodes: ['h:1'], name: 'x' }), { ...INVALID, message: /unknown sentinel key 'name'/ })
  assert.throws(() => make({ masterName: 'm', nodes: ['redis+unix:///tmp/s'] }), { ...INVALID, message: /nodes must be/ })
})
