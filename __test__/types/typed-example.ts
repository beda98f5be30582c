// Compiled with `tsc --strict --noEmit`: the generics must flow from ReliableQueue<T> to add,
// addBulk and job.data, and a wrong payload type must be a compile error.
import { ReliableQueue, HoldfastError, metrics, listQueues, METRICS_CONTENT_TYPE, type Job, type QueueStats, type Worker, type DeadJob } from '../..'

interface Email {
  to: string
  subject?: string
}

async function main(): Promise<void> {
  const queue = new ReliableQueue<Email>('email', { url: 'redis://127.0.0.1:6379', mode: 'stream', prefix: 'app' })
  const id: string = await queue.add({ to: 'a@b.c' }, { jobId: 'x', maxAttempts: 2 })
  const ids: string[] = await queue.addBulk([{ to: 'x' }, { to: 'y', subject: 'hi' }])

  // @ts-expect-error: a number is not an Email
  await queue.add(42)
  // @ts-expect-error: `to` is required
  await queue.addBulk([{ subject: 'no recipient' }])
  // @ts-expect-error: unknown mode
  new ReliableQueue<Email>('email', { mode: 'fifo' })
  new ReliableQueue<Email>('email', {
    url: 'rediss://redis.example.com:6380',
    tls: { ca: [Buffer.from('-----BEGIN CERTIFICATE-----'), 'pem'], servername: 'redis.example.com' },
  })
  new ReliableQueue<Email>('email', { tls: true }).on('warning', (w) => console.log(w.code === 'HOLDFAST_EVICTION', w.message))
  new ReliableQueue<Email>('email', { sentinel: { masterName: 'mymaster', nodes: ['10.0.0.1:26379', 'redis://:pw@10.0.0.2:26379'] } })
  // @ts-expect-error sentinel.nodes is an array
  new ReliableQueue<Email>('email', { sentinel: { masterName: 'mymaster', nodes: '10.0.0.1:26379' } })
  new ReliableQueue<Email>('email', { cluster: ['10.0.0.1:7000', 'rediss://:pw@10.0.0.2:7000'], tls: { ca: 'PEM' } })
  // @ts-expect-error cluster is an array of seeds
  new ReliableQueue<Email>('email', { cluster: '10.0.0.1:7000' })
  new ReliableQueue<Email>('email', { durable: { replicas: 1, fsync: true, timeoutMs: 500 } })
  // @ts-expect-error durable.replicas is a number
  new ReliableQueue<Email>('email', { durable: { replicas: '1' } })
  // @ts-expect-error: rejectUnauthorized is a boolean
  new ReliableQueue<Email>('email', { tls: { rejectUnauthorized: 'no' } })
  new ReliableQueue<Email>('email', { mode: 'list', listKey: 'jobs:email' })

  const worker: Worker<Email> = queue.process(async (job: Job<Email>) => {
    const to: string = job.data.to
    const attempt: number = job.attempt
    const signal: AbortSignal = job.signal
    // @ts-expect-error: no such field on Email
    job.data.cc
    return `${to} ${attempt} ${signal.aborted}`
  }, { concurrency: 64, visibilityTimeoutMs: 30_000, maxAttempts: 3, maxDeliveries: 5 })

  queue.process((job) => {
    job.data.to.toUpperCase() // inferred Job<Email>, plain (non-async) handler
  })

  worker.on('completed', (job, result) => console.log(job.data.to, result))
  worker.on('failed', (job, err) => console.log(job.id, err.message))
  worker.on('stalled', (jobId) => console.log(jobId.length))
  worker.on('dead', (jobId, reason) => console.log(jobId, reason))
  worker.on('error', (err: HoldfastError) => console.log(err.code))
  await worker.close()
  const stats: QueueStats = await queue.stats()
  const n: number = stats.waiting + stats.active + stats.delayed + stats.dead + stats.workers
  console.log(id, ids, n)
  await queue.close()
}

void main

async function failureModel(queue: ReliableQueue<Email>): Promise<void> {
  await queue.add({ to: 'a' }, { delayMs: 500, backoff: { type: 'exponential', delayMs: 100, maxDelayMs: 5000, jitter: 0.2 } })
  await queue.add({ to: 'b' }, { runAt: new Date(Date.now() + 1000), jobId: 'b-1' })
  await queue.addBulk([{ to: 'c' }, { to: 'd' }], { jobIds: ['c', undefined], delayMs: 10 })
  // @ts-expect-error: per-job backoff cannot be a function
  await queue.add({ to: 'e' }, { backoff: () => 5 })
  const w = queue.process(async () => {}, { backoff: (attempt, err) => attempt * 100 + err.message.length, handlerTimeoutMs: 1000 })
  w.on('failed', (job, err, willRetry: boolean) => console.log(job.maxAttempts, err, willRetry))
  w.on('retrying', (job, err, delayMs: number) => console.log(job.id, err, delayMs))
  const dead: DeadJob<Email>[] = await queue.dead.list({ limit: 10 })
  const to: string = dead[0].data.to
  const moved: number = await queue.dead.retry('all')
  await queue.dead.retry([dead[0].id])
  await queue.dead.purge()
  await queue.pause()
  await queue.resume()
  const paused: boolean = (await queue.stats()).paused
  const age: number | null = (await queue.stats()).oldestWaitingMs
  const text: string = await queue.metrics()
  const all: string = await metrics([queue, new ReliableQueue('other')])
  const next: Email[] = (await queue.peek({ limit: 5 })).map((j) => j.data)
  const found: Array<'stream' | 'list' | null> = (await listQueues({ url: 'redis://127.0.0.1:6379', prefix: 'app' })).map((q) => q.mode)
  console.log(age, text, all, next, found, METRICS_CONTENT_TYPE.length)
  // @ts-expect-error metrics takes queues
  await metrics(['email'])
  const outcome = await queue.waitFor<{ sent: boolean }>('x', { timeoutMs: 1000 })
  if (outcome.state === 'completed') console.log(outcome.result.sent)
  else console.log(outcome.error.length)
  const where = await queue.getJob('x')
  const state: 'waiting' | 'active' | 'delayed' | 'completed' | 'dead' | 'unknown' = where.state
  const recipient: string | undefined = where.data?.to
  console.log(state, recipient)
  await queue.add({ to: 'a' }, { keepOutcomeMs: 60_000 })
  new ReliableQueue<Email>('email', { keepOutcomeMs: 3_600_000 })
  // @ts-expect-error waitFor takes an id
  await queue.waitFor(42)
  console.log(to, moved, paused)
}

void failureModel

async function payloadTypes(): Promise<void> {
  // bytes as the whole payload: delivered as a Buffer
  const images = new ReliableQueue<Uint8Array>('images')
  await images.add(new Uint8Array([1, 2, 3]))
  images.process(async (job) => job.data.byteLength)
  const buffers = new ReliableQueue<Buffer>('buffers')
  await buffers.add(Buffer.from('x'))
  // @ts-expect-error: a Date does not survive JSON
  new ReliableQueue<{ at: Date }>('dates')
  // @ts-expect-error: nor a Set
  new ReliableQueue<Set<string>>('sets')
  // @ts-expect-error: nor a function
  new ReliableQueue<{ run: () => void }>('functions')
  // @ts-expect-error: bytes only as the whole payload
  new ReliableQueue<{ image: Uint8Array }>('nested')
  // untyped: any
  const anyQueue = new ReliableQueue('any')
  await anyQueue.add({ at: new Date().toISOString() })
}

void payloadTypes
