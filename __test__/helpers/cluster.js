'use strict'
// A local Redis Cluster for the JS tests: every node a throwaway RedisServer, joined with the
// commands `redis-cli --cluster create` sends (ADDSLOTS, MEET, REPLICATE), so it needs no
// redis-cli of the server's version: it runs on Redis 6.2, 7.0 and Valkey 8.1 alike.
// crates/core/tests/common/cluster.rs builds its clusters with redis-cli itself.
const { createClient } = require('redis')
const { RedisServer } = require('../../scripts/redis-server')
const { waitFor } = require('./redis-server')

const SLOTS = 16384

async function connect(port) {
  const client = createClient({ url: `redis://127.0.0.1:${port}` })
  client.on('error', () => {})
  await client.connect()
  return client
}

/** `masters` masters, `replicas` replicas each; a node is failing after 1 s of silence. */
async function startCluster(masters = 3, replicas = 1) {
  const args = ['--cluster-enabled', 'yes', '--cluster-node-timeout', '1000',
    '--cluster-replica-validity-factor', '0', '--repl-diskless-sync-delay', '0']
  const nodes = []
  for (let i = 0; i < masters * (1 + replicas); i++) nodes.push(await RedisServer.start({ args }))
  const clients = await Promise.all(nodes.map((n) => connect(n.port)))
  try {
    const ids = await Promise.all(clients.map((c) => c.sendCommand(['CLUSTER', 'MYID'])))
    for (let m = 0; m < masters; m++) {
      const from = Math.floor((m * SLOTS) / masters)
      const to = Math.floor(((m + 1) * SLOTS) / masters)
      const slots = []
      for (let s = from; s < to; s++) slots.push(String(s))
      await clients[m].sendCommand(['CLUSTER', 'ADDSLOTS', ...slots])
      await clients[m].sendCommand(['CLUSTER', 'SET-CONFIG-EPOCH', String(m + 1)])
    }
    for (const c of clients.slice(1)) await c.sendCommand(['CLUSTER', 'MEET', '127.0.0.1', String(nodes[0].port)])
    await waitFor(async () => {
      for (const c of clients) {
        const info = await c.sendCommand(['CLUSTER', 'INFO'])
        if (!info.includes(`cluster_known_nodes:${nodes.length}`)) return false
      }
      return true
    }, 30_000, 'every node to know every other')
    for (let r = masters; r < nodes.length; r++) {
      await clients[r].sendCommand(['CLUSTER', 'REPLICATE', ids[(r - masters) % masters]])
    }
    await waitFor(async () => {
      for (const c of clients) {
        const info = await c.sendCommand(['CLUSTER', 'INFO'])
        if (!info.includes('cluster_state:ok')) return false
      }
      return true
    }, 30_000, 'the cluster to be ok')
  } finally {
    for (const c of clients) c.destroy()
  }
  return {
    nodes,
    seeds: nodes.map((n) => `127.0.0.1:${n.port}`),
    /** The port of the master that owns `key`'s slot, as node `via` sees it. */
    async ownerOf(key, via = nodes.find((n) => n.proc)) {
      const c = await connect(via.port)
      try {
        const slot = await c.sendCommand(['CLUSTER', 'KEYSLOT', key])
        for (const [from, to, [, port]] of await c.sendCommand(['CLUSTER', 'SLOTS'])) {
          if (slot >= from && slot <= to) return port
        }
        return null
      } finally {
        c.destroy()
      }
    },
    async close() {
      for (const n of nodes) await n.close()
    },
  }
}

module.exports = { startCluster }
