'use strict'
// The hand-rolled reliable list queue from blog posts, on node-redis: LPUSH to a wait list;
// `concurrency` loops, each on its own connection, BLMOVE one job into a processing list, run
// it, LREM it. One job per round trip, and nothing recovers a dead worker's processing list.

const version = require('./version')

module.exports = {
  name: 'redis-list',

  describe() {
    return { version: version('redis'), pattern: 'LPUSH; per loop BLMOVE wait processing RIGHT LEFT, LREM' }
  },

  keyPattern(prefix) {
    return `${prefix}:*`
  },

  async open({ url, queue, prefix }) {
    const { createClient } = require('redis')
    const wait = `${prefix}:${queue}:wait`
    const processing = `${prefix}:${queue}:processing`
    const client = createClient({ url })
    client.on('error', () => {})
    await client.connect()
    const loops = new Set()
    return {
      add: (data) => client.lPush(wait, JSON.stringify(data)),

      async addBulk(items) {
        return client.lPush(wait, items.map((d) => JSON.stringify(d))).then(() => items.length)
      },

      startWorker({ concurrency, onData, onFailed, onError }) {
        let running = true
        const handler = async (data) => data
        const loop = async () => {
          const conn = client.duplicate()
          conn.on('error', () => {})
          await conn.connect()
          try {
            while (running) {
              const el = await conn.blMove(wait, processing, 'RIGHT', 'LEFT', 0.2)
              if (el === null) continue
              const data = JSON.parse(el)
              try {
                onData(data)
                await handler(data)
              } catch (err) {
                onFailed(err)
              }
              await conn.lRem(processing, 1, el)
            }
          } catch (err) {
            onError(err)
          } finally {
            conn.destroy()
          }
        }
        for (let i = 0; i < concurrency; i++) loops.add(loop())
        return {
          close: async () => {
            running = false
            await Promise.all(loops)
            loops.clear()
          },
        }
      },

      async counts() {
        const [waiting, active] = await Promise.all([client.lLen(wait), client.lLen(processing)])
        return { waiting, active, delayed: 0, dead: 0, completed: null }
      },

      async close() {
        client.destroy()
      },
    }
  },
}
