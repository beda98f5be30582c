'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { useRedis, uniqueName, waitFor, MODES } = require('./helpers/redis-server')
const { startFixture } = require('./helpers/child')

for (const mode of MODES) {
  test(`[${mode}] a worker process SIGKILLed mid-batch loses no job: another worker runs every unacked one`, async (t) => {
    const redis = await useRedis()
    t.after(() => redis.close())
    const name = uniqueName('crash')
    const queue = new ReliableQueue(name, { url: redis.url, mode })
    t.after(() => queue.close())
    const total = 600
    const ids = await queue.addBulk(Array.from({ length: total }, (_, i) => ({ i })))

    const timeoutMs = 1000
    const child = startFixture('worker.js', {
      HF_URL: redis.url,
      HF_QUEUE: name,
      HF_MODE: mode,
      HF_CONCURRENCY: '50',
      HF_VISIBILITY_MS: String(timeoutMs),
    })
    await child.waitLine((m) => m.ready)
    await waitFor(() => child.lines.filter((m) => m.done).length >= 100, 20_000, 'child progress')
    child.proc.kill('SIGKILL')
    const { signal } = await child.exited
    const killedAt = Date.now()
    assert.equal(signal, 'SIGKILL')
    const doneByChild = new Set(child.lines.filter((m) => m.done).map((m) => m.done))
    assert.ok(doneByChild.size < total, 'the kill landed mid-run')

    const doneHere = new Set()
    const stalled = new Set()
    const worker = queue.process(async (job) => {
      doneHere.add(job.id)
    }, { concurrency: 100, visibilityTimeoutMs: timeoutMs })
    let firstStalledAt = null
    worker.on('stalled', (id) => {
      firstStalledAt ??= Date.now()
      stalled.add(id)
    })
    const lost = () => ids.filter((id) => !doneByChild.has(id) && !doneHere.has(id))
    await waitFor(() => lost().length === 0, 30_000, 'every job to run')
    // a hang guard, not a timing assertion: recovery is due within ~1.25x the timeout
    await waitFor(() => stalled.size > 0, 20 * timeoutMs, 'the dead worker\'s jobs to be recovered')
    await waitFor(async () => (await queue.stats()).active === 0, 10_000, 'nothing active')
    await worker.close()
    assert.deepEqual(lost(), [])
    for (const id of stalled) assert.ok(doneHere.has(id), `recovered job ${id} ran here`)
    const stats = await queue.stats()
    assert.equal(stats.waiting, 0)
    assert.equal(stats.active, 0)
    assert.equal(stats.dead, 0)
    t.diagnostic(`${mode}: ${stalled.size} jobs recovered ${firstStalledAt - killedAt} ms after the kill (timeout ${timeoutMs} ms)`)
  })
}
