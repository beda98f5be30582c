'use strict'
// The `durable` option: add() resolves once WAIT (replicas) / WAITAOF (fsync) confirms the job,
// and rejects with ERR_HOLDFAST_NOT_DURABLE when the confirmation does not come. A real master
// and replica; the replica is frozen with SIGSTOP to withhold its acks. Runs in the server
// matrix: fsync works on servers with WAITAOF (Valkey 8.1 here) and is refused, before anything
// is added, on those without (Redis 6.2, 7.0).
const test = require('node:test')
const assert = require('node:assert/strict')
const { createClient } = require('redis')
const { ReliableQueue } = require('..')
const { RedisServer, uniqueName, waitFor, key, MODES } = require('./helpers/redis-server')

const NOT_DURABLE = { code: 'ERR_HOLDFAST_NOT_DURABLE' }

async function connect(url) {
  const client = createClient({ url })
  client.on('error', () => {})
  await client.connect()
  return client
}

let master, replica, onMaster, onReplica

test.before(async () => {
  master = await RedisServer.start({ args: ['--repl-diskless-sync-delay', '0'] })
  replica = await RedisServer.start({ args: ['--replicaof', '127.0.0.1', String(master.port)] })
  onMaster = await connect(master.url)
  onReplica = await connect(replica.url)
  // a write, then WAIT: once the replica acks it, it streams
  await waitFor(async () => {
    await onMaster.set('holdfast-test-probe', '1')
    return (await onMaster.sendCommand(['WAIT', '1', '100'])) === 1
  }, 20_000, 'the replica to ack')
})
test.after(async () => {
  onMaster?.destroy()
  onReplica?.destroy()
  if (replica) await replica.close()
  if (master) await master.close()
})

/** Jobs of queue `name` waiting, as the server behind `client` sees them. */
function waiting(client, name, mode) {
  return mode === 'stream' ? client.xLen(key(name, 'stream')) : client.lLen(key(name, 'wait'))
}

for (const mode of MODES) {
  test(`[${mode}] durable adds resolve once the replica has them`, async (t) => {
    const name = uniqueName('durable')
    const queue = new ReliableQueue(name, { url: master.url, mode, durable: { replicas: 1, timeoutMs: 5000 } })
    t.after(() => queue.close())
    await queue.add({ n: 1 })
    assert.equal(await waiting(onReplica, name, mode), 1)
    await queue.addBulk([{ n: 2 }, { n: 3 }], { jobIds: ['a', 'b'] })
    assert.equal(await waiting(onReplica, name, mode), 3)
    await Promise.all(Array.from({ length: 20 }, (_, n) => queue.add({ n })))
    assert.equal(await waiting(onReplica, name, mode), 23)
  })

  test(`[${mode}] a replica that does not ack makes the add reject with ERR_HOLDFAST_NOT_DURABLE; the job is in Redis`, async (t) => {
    const name = uniqueName('durable')
    const queue = new ReliableQueue(name, { url: master.url, mode, durable: { replicas: 1, timeoutMs: 300 } })
    t.after(() => queue.close())
    await queue.add({ n: 1 })
    process.kill(replica.proc.pid, 'SIGSTOP')
    try {
      await assert.rejects(queue.add({ n: 2 }), {
        ...NOT_DURABLE,
        message: /copy to 1 replica\(s\) was not confirmed.*retry with the same jobId/,
      })
    } finally {
      process.kill(replica.proc.pid, 'SIGCONT')
    }
    assert.equal(await waiting(onMaster, name, mode), 2)
    // a retry with the same jobId once the replica is back adds it at most once
    await waitFor(() => queue.add({ n: 3 }, { jobId: 'retried' }).then(() => true, () => false), 20_000, 'durable again')
    await queue.add({ n: 3 }, { jobId: 'retried' })
    assert.equal(await waiting(onMaster, name, mode), 3)
  })
}

test('fsync: confirmed where the server has WAITAOF and appendonly yes, else refused before anything is added', async (t) => {
  for (const aof of ['no', 'yes']) {
    const server = await RedisServer.start({ args: ['--appendonly', aof] })
    const client = await connect(server.url)
    t.after(async () => {
      client.destroy()
      await server.close()
    })
    const [info] = await client.sendCommand(['COMMAND', 'INFO', 'WAITAOF'])
    for (const mode of MODES) {
      const name = uniqueName('fsync')
      const queue = new ReliableQueue(name, { url: server.url, mode, durable: { fsync: true } })
      t.after(() => queue.close())
      if (info && aof === 'yes') {
        await queue.add({ n: 1 })
        assert.equal(await waiting(client, name, mode), 1)
      } else {
        await assert.rejects(queue.add({ n: 1 }), { ...NOT_DURABLE, message: /needs WAITAOF.*nothing was added/ })
        assert.equal(await waiting(client, name, mode), 0)
      }
    }
  }
})

test('bad durable options throw ERR_HOLDFAST_INVALID_ARGUMENT with the reason', () => {
  const INVALID = { code: 'ERR_HOLDFAST_INVALID_ARGUMENT' }
  const make = (durable) => new ReliableQueue('q', { url: 'redis://127.0.0.1:1', durable })
  assert.throws(() => make({}), { ...INVALID, message: /replicas >= 1 or fsync/ })
  assert.throws(() => make({ replicas: -1 }), INVALID)
  assert.throws(() => make({ replicas: 1.5 }), INVALID)
  assert.throws(() => make({ fsync: 'yes' }), { ...INVALID, message: /durable.fsync must be a boolean/ })
  assert.throws(() => make({ replicas: 1, timeoutMs: 0 }), INVALID)
  assert.throws(() => make({ replica: 1 }), { ...INVALID, message: /did you mean 'replicas'/ })
  assert.throws(() => make(true), INVALID)
})
