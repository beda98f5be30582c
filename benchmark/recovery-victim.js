'use strict'
// The worker that benchmark/recovery.js SIGKILLs: takes jobs with each library's default options
// and never finishes them. Prints {"ready":true} once listening, then {"started":<n>} per job.
//   PEER=holdfast-stream|holdfast-list|bullmq|bee-queue URL=redis://... QUEUE=name
const { PEER, URL: url, QUEUE: queue } = process.env
const CONCURRENCY = Number(process.env.CONCURRENCY || 8)
const say = (msg) => process.stdout.write(`${JSON.stringify(msg)}\n`)
const never = () => new Promise(() => {})

;(async () => {
  if (PEER.startsWith('holdfast-')) {
    const { ReliableQueue } = require('..')
    const q = new ReliableQueue(queue, { url, mode: PEER.slice('holdfast-'.length) })
    q.process(async (job) => { say({ started: job.data.n }); await never() }, { concurrency: CONCURRENCY, prefetch: 0 })
  } else if (PEER === 'bullmq') {
    const { Worker } = require('bullmq')
    const IORedis = require('ioredis')
    const connection = new IORedis(url, { maxRetriesPerRequest: null })
    new Worker(queue, async (job) => { say({ started: job.data.n }); await never() }, { connection, concurrency: CONCURRENCY })
  } else if (PEER === 'bee-queue') {
    const Queue = require('bee-queue')
    const q = new Queue(queue, { redis: { url } })
    await q.ready()
    q.process(CONCURRENCY, async (job) => { say({ started: job.data.n }); await never() })
  } else {
    throw new Error(`unknown PEER ${PEER}`)
  }
  say({ ready: true })
})()
