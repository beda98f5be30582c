'use strict'
// Test-side Redis: a throwaway server per test file (killed when done, so tests can stop and
// restart it on purpose), or REDIS_URL for tests that don't restart Redis. Never the shared
// 6379 service.
const assert = require('node:assert/strict')
const { createClient } = require('redis')
const { RedisServer, freePort } = require('../../scripts/redis-server')

let counter = 0
/** A queue name no other test uses. */
function uniqueName(label = 'q') {
  return `${label}-${process.pid}-${Date.now().toString(36)}-${++counter}`
}

/**
 * The Redis a test file uses: its own server, or REDIS_URL when set and the test does not need
 * to restart Redis. Returns { url, client (node-redis), server|null, close() }.
 */
async function useRedis({ restartable = false } = {}) {
  const server = !restartable && process.env.REDIS_URL ? null : await RedisServer.start()
  const url = server ? server.url : process.env.REDIS_URL
  const client = createClient({ url })
  client.on('error', () => {})
  await client.connect()
  return {
    url,
    server,
    client,
    async close(failed) {
      if (failed && server) server.dumpLog()
      // destroy, not quit: quit waits for a server that a test may have killed
      client.destroy()
      if (server) await server.close()
    },
  }
}

/** Polls `fn` until it returns truthy, or fails after `ms`. Timing-free: only a hang guard. */
async function waitFor(fn, ms = 20_000, what = 'condition') {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Both modes run the same behaviour tests. */
const MODES = ['stream', 'list']

/** A key of queue `name` under the default prefix (tests read Redis directly to check it). */
function key(name, part) {
  return `holdfast:{${name}}:${part}`
}

/** Every key of queue `name` still in Redis, but `dedup:<jobId>` markers (they outlive their
 * jobs on purpose, for the dedup window) and `meta` (the queue-wide totals of finished jobs:
 * one small hash per queue, kept on purpose). */
async function keysOf(client, name) {
  return (await client.keys(`holdfast:{${name}}:*`)).filter((k) => !k.includes(':dedup:') && !k.endsWith(':meta')).sort()
}

/** The dead letters of a queue as stored (a stream in both modes), oldest first: { id, d, a, err, t }. */
async function deadLetters(client, name) {
  return (await client.xRange(key(name, 'dead'), '-', '+')).map((e) => ({ ...e.message, a: Number(e.message.a) }))
}

/** The rules of the README's ACL SETUSER line, after the user name. */
function documentedAclRules() {
  const readme = require('node:fs').readFileSync(require('node:path').join(__dirname, '..', '..', 'README.md'), 'utf8')
  const m = /<!-- acl -->\s*```\n(ACL SETUSER holdfast [^\n]+)\n```/.exec(readme)
  if (!m) throw new Error('README.md has no ACL block')
  return m[1].split(' ').slice(3)
}

/**
 * A failover run on `queue`: a worker that records the ids it runs, and a producer that adds `n`
 * jobs one at a time with jobIds `<mode>-<i>`, retrying a failed add (only a connection or
 * not-durable error: anything else fails the test) with the same jobId until it resolves.
 * Returns { mode, seen, worker, added, refused, producer } (`producer` settles when all are in).
 */
function failoverRun(queue, mode, n) {
  const seen = new Set()
  const worker = queue.process(async (job) => { seen.add(job.id) }, { visibilityTimeoutMs: 2000 })
  worker.on('error', () => {}) // connection errors while the master is gone
  const run = { mode, seen, worker, added: 0, refused: {} }
  run.producer = (async () => {
    for (let i = 0; i < n; i++) {
      for (;;) {
        try {
          await queue.add({ i }, { jobId: `${mode}-${i}` })
          break
        } catch (err) {
          assert.ok(['ERR_HOLDFAST_CONNECTION', 'ERR_HOLDFAST_NOT_DURABLE'].includes(err.code), err)
          run.refused[err.code] = (run.refused[err.code] ?? 0) + 1
          await new Promise((r) => setTimeout(r, 50))
        }
      }
      run.added++
      await new Promise((r) => setTimeout(r, 5))
    }
  })()
  return run
}

module.exports = { RedisServer, useRedis, uniqueName, waitFor, freePort, MODES, key, keysOf, deadLetters, documentedAclRules, failoverRun }
