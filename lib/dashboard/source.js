'use strict'
// What the dashboard server reads and does, over real queues: the queues under a prefix (found
// with SCAN, at most every DISCOVER_MS, since that walks the keyspace), their stats on every
// call, and the dead-letter and pause operations.

const { ReliableQueue, listQueues, HoldfastError } = require('../holdfast.js')

const DISCOVER_MS = 15_000

/** `connection`: queue options (url, prefix, tls, ...); `mode` forces one mode for every queue. */
function createSource(connection, { mode: forced } = {}) {
  const queues = new Map() // name -> ReliableQueue, in its mode
  let found = null // [{ name, mode }]
  let foundAt = 0

  async function discover(force) {
    if (!force && found && Date.now() - foundAt < DISCOVER_MS) return found
    found = await listQueues(connection)
    foundAt = Date.now()
    return found
  }

  function open(name, mode) {
    let q = queues.get(name)
    if (!q) {
      q = new ReliableQueue(name, { ...connection, mode: forced ?? mode ?? 'stream' })
      q.on('warning', () => {}) // server warnings are the workers' business, not the dashboard's
      queues.set(name, q)
    }
    return q
  }

  /** The queue of that name; an unknown name is looked for again once, then refused. */
  async function queue(name) {
    if (queues.has(name)) return queues.get(name)
    for (const force of [false, true]) {
      const hit = (await discover(force)).find((f) => f.name === name)
      if (hit) return open(hit.name, hit.mode)
    }
    throw new HoldfastError('ERR_HOLDFAST_UNKNOWN_QUEUE', `no queue named ${JSON.stringify(name)}`)
  }

  return {
    async queues() {
      const list = await discover(false)
      return Promise.all(
        list.map(async ({ name, mode }) => {
          const q = open(name, mode)
          const s = await q.stats()
          return {
            name,
            mode: forced ?? mode ?? 'stream',
            ...s,
            oldestWaitingSeconds: s.oldestWaitingMs == null ? null : s.oldestWaitingMs / 1000,
          }
        }),
      )
    },
    async dead(name, { offset, limit }) {
      return (await queue(name)).dead.list({ offset, limit })
    },
    async retry(name, ids) {
      return (await queue(name)).dead.retry(ids)
    },
    async purge(name) {
      return (await queue(name)).dead.purge()
    },
    async pause(name) {
      await (await queue(name)).pause()
    },
    async resume(name) {
      await (await queue(name)).resume()
    },
    async close() {
      await Promise.all([...queues.values()].map((q) => q.close({ timeoutMs: 0 })))
    },
  }
}

module.exports = { createSource }
