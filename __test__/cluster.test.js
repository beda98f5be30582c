'use strict'
// Redis Cluster from JS: the `cluster` option on 3 masters + 3 replicas, both modes. Every API
// on a queue; then the master that owns the queues' slots is SIGKILLed while a producer adds
// (durably, retrying each failed add with its jobId) and a worker runs: the replica takes over
// and both carry on by themselves; every job runs. crates/core/tests/cluster.rs also moves a
// slot under load and puts queues on every master.
const test = require('node:test')
const assert = require('node:assert/strict')
const { createClient } = require('redis')
const { ReliableQueue } = require('..')
const { uniqueName, waitFor, MODES, documentedAclRules, failoverRun } = require('./helpers/redis-server')
const { startCluster } = require('./helpers/cluster')

const opts = (cluster, extra) => ({ url: 'redis://unused.invalid:1', cluster: cluster.seeds, ...extra })

test('every API works on a cluster queue in both modes', async (t) => {
  const cluster = await startCluster(3, 1)
  t.after(() => cluster.close())
  for (const mode of MODES) {
    const queue = new ReliableQueue(uniqueName('cluster-api'), opts(cluster, { mode }))
    t.after(() => queue.close())
    await queue.addBulk([{ n: 1 }, { n: 2 }])
    await queue.add({ n: 3 }, { jobId: 'three', delayMs: 100 })
    await queue.add({ n: 4, fail: true }, { maxAttempts: 1 })
    await queue.pause()
    assert.equal((await queue.stats()).paused, true)
    await queue.resume()
    const ran = []
    const worker = queue.process(async (job) => {
      ran.push(job.data.n)
      if (job.data.fail) throw new Error('no')
    }, { visibilityTimeoutMs: 5000 })
    await waitFor(async () => (await queue.stats()).dead === 1 && ran.length === 4, 30_000, `${mode}: 4 runs, 1 dead`)
    const [dead] = await queue.dead.list()
    assert.equal(dead.error, 'no')
    assert.equal(await queue.dead.retry('all'), 1)
    await waitFor(() => ran.length === 5, 30_000, `${mode}: the retried job to run`)
    assert.equal(await queue.add({ n: 3 }, { jobId: 'three' }), 'three') // deduplicated
    // outcomes, lookups, metrics and the holdfast command on the queue's node
    const kept = await queue.add({ n: 6 }, { jobId: 'kept', keepOutcomeMs: 60_000 })
    assert.equal((await queue.waitFor(kept, { timeoutMs: 20_000 })).state, 'completed')
    assert.equal((await queue.getJob('kept')).state, 'completed')
    assert.equal((await queue.getJob('nowhere')).state, 'unknown')
    assert.match(await queue.metrics(), /^holdfast_jobs_completed_total\{[^}]*\} 4$/m)
    const cli = await new Promise((resolve) => {
      const bin = require('node:path').join(__dirname, '..', 'bin', 'holdfast.js')
      const args = ['stats', queue.name, '--cluster', cluster.seeds.join(','), '--json']
      require('node:child_process').execFile(process.execPath, [bin, ...args], { env: { ...process.env, REDIS_URL: '' } }, (err, stdout, stderr) =>
        resolve({ code: err ? err.code : 0, stdout, stderr }),
      )
    })
    assert.equal(cli.code, 0, cli.stderr)
    assert.equal(JSON.parse(cli.stdout).mode, mode)
    await worker.close()
    const stats = await queue.stats()
    assert.deepEqual([stats.waiting, stats.delayed, stats.dead], [0, 0, 1])
    assert.equal(await queue.dead.purge(), 1)
    assert.deepEqual(ran.sort(), [1, 2, 3, 4, 4, 6])
  }
})

test('a cluster queue runs as an ACL user with the documented rules and +cluster|slots +asking', async (t) => {
  const cluster = await startCluster(3, 0)
  t.after(() => cluster.close())
  const rules = [...documentedAclRules(), '+cluster|slots', '+asking'].map((r) => (r === '>password' ? '>pw' : r))
  const admins = []
  for (const node of cluster.nodes) {
    const admin = createClient({ url: node.url })
    admin.on('error', () => {})
    await admin.connect()
    await admin.sendCommand(['ACL', 'SETUSER', 'holdfast', ...rules]) // ACLs are per node
    admins.push(admin)
  }
  t.after(() => admins.forEach((a) => a.destroy()))
  for (const mode of MODES) {
    const queue = new ReliableQueue(uniqueName('cluster-acl'), opts(cluster, { url: 'redis://holdfast:pw@unused', mode }))
    await queue.addBulk([1, 2, 3])
    await queue.add(4, { jobId: 'four', delayMs: 20 })
    const ran = []
    const worker = queue.process(async (job) => { ran.push(job.data) })
    await waitFor(() => ran.length === 4, 30_000, `${mode}: every job to run`)
    await worker.close()
    assert.equal((await queue.stats()).waiting, 0)
    await queue.close()
  }
  for (const admin of admins) {
    const log = await admin.sendCommand(['ACL', 'LOG'])
    assert.deepEqual(log, [], 'no command was denied')
  }
})

test('workers and producers follow a cluster failover in both modes; every durable add runs', async (t) => {
  const cluster = await startCluster(3, 1)
  t.after(() => cluster.close())
  const N = 200
  const runs = []
  for (const mode of MODES) {
    // every queue on the first master: it is the one killed
    let name
    do name = uniqueName('cluster-failover')
    while (await cluster.ownerOf(`holdfast:{${name}}:meta`) !== cluster.nodes[0].port)
    const queue = new ReliableQueue(name, opts(cluster, { mode, durable: { replicas: 1, timeoutMs: 500 } }))
    t.after(() => queue.close())
    runs.push(failoverRun(queue, mode, N))
  }

  await waitFor(() => runs.every((r) => r.added >= N / 2), 60_000, 'half the adds')
  const victim = cluster.nodes[0]
  await victim.stop()
  const survivor = cluster.nodes[1] // another master
  await waitFor(async () => !(await ownsAny(victim, survivor)), 30_000, "a replica to take over the killed master's slots")
  // the old master comes back empty and becomes a replica of the new one: durable adds resume
  await victim.restart()

  for (const run of runs) {
    await run.producer
    await waitFor(() => run.seen.size >= N, 60_000, `every ${run.mode} job to run`)
    await run.worker.close()
    for (let i = 0; i < N; i++) assert.ok(run.seen.has(`${run.mode}-${i}`), `${run.mode}-${i} never ran`)
    t.diagnostic(`${run.mode}: adds refused, then retried: ${JSON.stringify(run.refused)}`)
  }
})

/** Whether the cluster map, as `via` sees it, still gives `node` any slot. */
async function ownsAny(node, via) {
  const c = createClient({ url: `redis://127.0.0.1:${via.port}` })
  c.on('error', () => {})
  await c.connect()
  try {
    const slots = await c.sendCommand(['CLUSTER', 'SLOTS'])
    return slots.some(([, , [, port]]) => port === node.port)
  } finally {
    c.destroy()
  }
}

test('bad cluster options throw ERR_HOLDFAST_INVALID_ARGUMENT with the reason', () => {
  const INVALID = { code: 'ERR_HOLDFAST_INVALID_ARGUMENT' }
  const make = (extra) => new ReliableQueue('q', extra)
  assert.throws(() => make({ cluster: [] }), { ...INVALID, message: /cluster must be a non-empty array/ })
  assert.throws(() => make({ cluster: 'h:1' }), { ...INVALID, message: /cluster must be a non-empty array/ })
  assert.throws(() => make({ cluster: ['h:1'], url: 'redis://h/3' }), { ...INVALID, message: /only database 0/ })
  assert.throws(() => make({ cluster: ['h:1'], mode: 'list', listKey: 'jobs' }), { ...INVALID, message: /hash to the queue's slot/ })
  assert.throws(() => make({ cluster: ['h:1'], sentinel: { masterName: 'm', nodes: ['h:2'] } }), { ...INVALID, message: /exclude each other/ })
  make({ cluster: ['h:1'], mode: 'list', listKey: 'jobs:{q}' }).close()
})
