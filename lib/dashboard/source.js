'use strict'
// What the dashboard server reads and does, over real queues: the queues under a prefix (found
// with SCAN, at most every DISCOVER_MS, since that walks the keyspace), their stats on every
// call, and the dead-letter and pause operations.

const { ReliableQueue, listQueues, HoldfastError } = require('../holdfast.js')

const DISCOVER_MS = 15_000

/** `connection`: queue options (url, prefix, tls, ...); `mode` forces one mode for every queue. */
function createSource(connection, { mode: forced } = {}) {
  const queues = new Map() // name -> Promise<ReliableQueue>, in its mode (one per name, even when asked for twice at once)
  let found = null // [{ name, mode }]
  let foundAt = 0

  async function discover(force) {
    if (!force && found && Date.now() - foundAt < DISCOVER_MS) return found
    found = await listQueues(connection)
    foundAt = Date.now()
    return found
  }

  const modes = new Map() // name -> mode, once known

  /** The queue in its mode: forced, else what its keys said, else what its workers recorded. */
  function open(name, mode) {
    if (!queues.has(name)) {
      const opening = openQueue(name, mode)
      queues.set(name, opening)
      opening.catch(() => queues.delete(name)) // Redis down: try again next time
    }
    return queues.get(name)
  }

  async function openQueue(name, mode) {
    mode = forced ?? mode ?? modes.get(name)
    if (!mode) {
      const probe = new ReliableQueue(name, connection)
      try {
        mode = (await probe._call((n) => n.detectMode())) ?? 'stream'
      } finally {
        await probe.close()
      }
    }
    modes.set(name, mode)
    const q = new ReliableQueue(name, { ...connection, mode })
    q.on('warning', () => {}) // server warnings are the workers' business, not the dashboard's
    return q
  }

  /** The queue of that name; an unknown name is looked for again once, then refused. */
  async function queue(name) {
    if (queues.has(name)) return queues.get(name)
    for (const force of [false, true]) {
      const hit = (await discover(force)).find((f) => f.name === name)
      if (hit) return await open(hit.name, hit.mode)
    }
    throw new HoldfastError('ERR_HOLDFAST_UNKNOWN_QUEUE', `no queue named ${JSON.stringify(name)}`)
  }

  return {
    async queues() {
      const list = await discover(false)
      return Promise.all(
        list.map(async ({ name, mode }) => {
          const q = await open(name, mode)
          const s = await q.stats()
          return {
            name,
            mode: modes.get(name),
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
      const opened = await Promise.allSettled([...queues.values()])
      await Promise.all(opened.filter((r) => r.status === 'fulfilled').map((r) => r.value.close({ timeoutMs: 0 })))
    },
  }
}

module.exports = { createSource }
