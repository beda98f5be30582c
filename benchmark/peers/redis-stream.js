'use strict'
// The hand-rolled Streams consumer on node-redis: XADD (pipelined for bulk); one loop of
// XREADGROUP COUNT <concurrency> BLOCK, run the batch's handlers concurrently, then XACK and
// XDEL the batch. No lease renewal, no recovery of a dead consumer's pending entries.

const version = require('./version')

module.exports = {
  name: 'redis-stream',

  describe() {
    return { version: version('redis'), pattern: 'XADD; XREADGROUP COUNT c BLOCK; XACK + XDEL per batch' }
  },

  keyPattern(prefix) {
    return `${prefix}:*`
  },

  async open({ url, queue, prefix }) {
    const { createClient } = require('redis')
    const stream = `${prefix}:${queue}:stream`
    const client = createClient({ url })
    client.on('error', () => {})
    await client.connect()
    let loop = null
    return {
      add: (data) => client.xAdd(stream, '*', { d: JSON.stringify(data) }),

      async addBulk(items) {
        const multi = client.multi()
        for (const d of items) multi.xAdd(stream, '*', { d: JSON.stringify(d) })
        return (await multi.exec()).length
      },

      startWorker({ concurrency, onData, onFailed, onError }) {
        let running = true
        const handler = async (data) => data
        loop = (async () => {
          const conn = client.duplicate()
          conn.on('error', () => {})
          await conn.connect()
          try {
            await conn.xGroupCreate(stream, 'workers', '0', { MKSTREAM: true }).catch(() => {})
            while (running) {
              const res = await conn.xReadGroup('workers', 'c1', { key: stream, id: '>' }, { COUNT: concurrency, BLOCK: 200 })
              if (!res) continue
              const entries = res[0].messages
              await Promise.all(entries.map(async (e) => {
                const data = JSON.parse(e.message.d)
                try {
                  onData(data)
                  await handler(data)
                } catch (err) {
                  onFailed(err)
                }
              }))
              const ids = entries.map((e) => e.id)
              await conn.multi().xAck(stream, 'workers', ids).xDel(stream, ids).exec()
            }
          } catch (err) {
            onError(err)
          } finally {
            conn.destroy()
          }
        })()
        return {
          close: async () => {
            running = false
            await loop
          },
        }
      },

      async counts() {
        const len = await client.xLen(stream)
        let active = 0
        try {
          active = (await client.xPending(stream, 'workers')).pending
        } catch {}
        return { waiting: len - active, active, delayed: 0, dead: 0, completed: null }
      },

      async close() {
        client.destroy()
      },
    }
  },
}
