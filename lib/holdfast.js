'use strict'
// The user-facing API over the generated native binding (../binding.js): JSON encoding, add
// coalescing, running handlers, EventEmitter events and coded errors. Queue logic lives in Rust.

const { EventEmitter } = require('node:events')
const native = require('./native.js').load()
const { checkBackoff, toSpec, fromSpec, delayFor } = require('./backoff.js')
const { HoldfastError, typeError, invalidArgument, fromNative, closedError } = require('./errors.js')
const { checkOptions } = require('./options.js')
const prometheus = require('./metrics.js')

function checkCloseOptions(options) {
  const { timeoutMs } = checkOptions('close options', options)
  if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && Number.isFinite(timeoutMs) && timeoutMs >= 0)) {
    throw invalidArgument('close timeoutMs must be a number of ms >= 0')
  }
  return { timeoutMs: timeoutMs === undefined ? undefined : Math.round(timeoutMs) }
}

/**
 * The workers of this process, by queue (url, prefix, name), whichever ReliableQueue object
 * made them: `pause()` stops them all before it resolves.
 */
const LOCAL_WORKERS = new Map()

/** Concurrent `add` calls made in one tick travel in one pipeline of at most this many jobs. */
const MAX_COALESCED = 1000
const MAX_JOB_ID_BYTES = native.MAX_JOB_ID_BYTES

function checkNumber(name, value) {
  if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value))) {
    throw invalidArgument(`${name} must be a finite number, got ${typeof value === 'number' ? value : typeof value}`)
  }
}

/**
 * Job data as it goes to Redis: JSON text, or, for a Uint8Array (a Buffer included), a copy of
 * its bytes, taken now so that later writes to it do not change the job.
 */
function encode(data, limit, where) {
  if (data !== null && typeof data === 'object' && !Array.isArray(data)) {
    if (data instanceof Uint8Array) {
      if (data.byteLength > limit) throw tooLarge(where, `${data.byteLength} bytes`, limit)
      return Buffer.from(data)
    }
    // what JSON would silently turn into {} or an index map
    if (ArrayBuffer.isView(data) || data instanceof ArrayBuffer || data instanceof Map || data instanceof Set) {
      throw typeError(
        'ERR_HOLDFAST_INVALID_PAYLOAD',
        `${where}is a ${data.constructor.name}, which JSON cannot carry; pass bytes as a Buffer or Uint8Array, or convert it to plain objects and arrays`,
      )
    }
  }
  let text
  try {
    text = JSON.stringify(data)
  } catch (e) {
    throw typeError('ERR_HOLDFAST_INVALID_PAYLOAD', `${where}cannot be encoded as JSON: ${e.message}`)
  }
  if (text === undefined) {
    throw typeError(
      'ERR_HOLDFAST_INVALID_PAYLOAD',
      `${where}of type ${typeof data} cannot be encoded as JSON; pass an object, array, string, number, boolean or null`,
    )
  }
  // A UTF-8 byte is at most 3 per UTF-16 unit, so most payloads skip the byte count.
  if (text.length * 3 > limit) {
    const size = Buffer.byteLength(text)
    if (size > limit) throw tooLarge(where, `${size} bytes as JSON`, limit)
  }
  return text
}

function tooLarge(where, size, limit) {
  return new HoldfastError(
    'ERR_HOLDFAST_PAYLOAD_TOO_LARGE',
    `${where}is ${size}, over the ${limit}-byte limit; store large data elsewhere and enqueue a reference, or raise maxPayloadBytes`,
  )
}

/** Bytes go to the native `binaries` column, and '' to `payloads` in their place. */
function bytesColumns(bytes, opts) {
  return ['', { ...opts, bytes }]
}

/**
 * Checks the options of `add` / `addBulk` and turns them into the native columns' values.
 * Checked here, per call, so one bad `add` never sinks the others sent in the same tick.
 */
function checkJobOptions(opts) {
  opts = checkOptions('add options', opts)
  const out = { jobId: undefined, maxAttempts: undefined, backoff: undefined, runAt: undefined, bytes: undefined, keepOutcomeMs: undefined }
  if (opts.jobId !== undefined) out.jobId = checkJobId(opts.jobId)
  if (opts.maxAttempts !== undefined) {
    if (!(Number.isInteger(opts.maxAttempts) && opts.maxAttempts >= 1 && opts.maxAttempts <= 0xffffffff)) {
      throw invalidArgument(`maxAttempts must be a whole number >= 1, got ${String(opts.maxAttempts)}`)
    }
    out.maxAttempts = opts.maxAttempts
  }
  const backoff = checkBackoff(opts.backoff, { allowFunction: false })
  if (backoff) out.backoff = toSpec(backoff)
  if (opts.keepOutcomeMs !== undefined) out.keepOutcomeMs = checkKeep(opts.keepOutcomeMs)
  if (opts.delayMs !== undefined && opts.runAt !== undefined) throw invalidArgument('give delayMs or runAt, not both')
  if (opts.delayMs !== undefined) {
    if (typeof opts.delayMs !== 'number' || !Number.isFinite(opts.delayMs) || opts.delayMs < 0) throw invalidArgument('delayMs must be a number of ms >= 0')
    if (opts.delayMs > 0) out.runAt = Date.now() + opts.delayMs
  }
  if (opts.runAt !== undefined) {
    const t = opts.runAt instanceof Date ? opts.runAt.getTime() : opts.runAt
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) throw invalidArgument('runAt must be a Date or a unix time in ms')
    out.runAt = Math.round(t)
  }
  return out
}

/** keepOutcomeMs: a whole number of ms, 0 (keep nothing) up to a year. */
function checkKeep(ms) {
  if (!(Number.isInteger(ms) && ms >= 0 && ms <= 365 * 86_400_000)) {
    throw invalidArgument(`keepOutcomeMs must be a whole number of ms from 0 to a year, got ${String(ms)}`)
  }
  return ms
}

function checkJobId(jobId) {
  if (typeof jobId !== 'string' || jobId.length === 0 || Buffer.byteLength(jobId) > MAX_JOB_ID_BYTES) {
    throw invalidArgument(`jobId must be a string of 1 to ${MAX_JOB_ID_BYTES} bytes`)
  }
  return jobId
}

const COLUMNS = [
  ['jobId', 'jobIds'],
  ['maxAttempts', 'maxAttempts'],
  ['backoff', 'backoffs'],
  ['runAt', 'runAts'],
  ['bytes', 'binaries'],
  ['keepOutcomeMs', 'keepOutcomeMs'],
]

/** Native `add` columns for `n` jobs, or undefined when no job has any option. */
function columns(n, jobOptions) {
  let cols
  for (let i = 0; i < n; i++) {
    const o = jobOptions(i)
    if (!o) continue
    for (const [field, col] of COLUMNS) {
      if (o[field] === undefined) continue
      cols ??= {}
      cols[col] ??= new Array(n).fill(null)
      cols[col][i] = o[field]
    }
  }
  return cols
}

/** One PEM Buffer from a string, a Buffer, or an array of them (as node:tls takes `ca`). */
function pem(name, value) {
  if (value === undefined) return undefined
  const parts = Array.isArray(value) ? value : [value]
  if (parts.length === 0 || !parts.every((p) => typeof p === 'string' || Buffer.isBuffer(p))) {
    throw invalidArgument(`tls.${name} must be a PEM string or Buffer, or an array of them`)
  }
  return Buffer.concat(parts.flatMap((p) => [Buffer.from(p), Buffer.from('\n')]))
}

function sentinelOptions(value) {
  if (value === undefined) return undefined
  const { masterName, nodes } = checkOptions('sentinel', value)
  if (typeof masterName !== 'string' || masterName === '') {
    throw invalidArgument('sentinel.masterName must be the name the sentinels monitor the master under')
  }
  if (!Array.isArray(nodes) || nodes.length === 0 || !nodes.every((n) => typeof n === 'string' && n !== '')) {
    throw invalidArgument("sentinel.nodes must be a non-empty array of 'host:port' strings or redis[s]:// urls")
  }
  return { masterName, nodes }
}

function clusterOptions(value) {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || value.length === 0 || !value.every((n) => typeof n === 'string' && n !== '')) {
    throw invalidArgument("cluster must be a non-empty array of seed nodes: 'host:port' strings or redis[s]:// urls")
  }
  return value
}

/** The `tls` option: `true` or an object of node:tls-style settings; undefined leaves TLS to the url. */
function tlsOptions(value) {
  if (value === undefined || value === false) return undefined
  const tls = checkOptions('tls', value === true ? {} : value)
  if (tls.servername !== undefined && typeof tls.servername !== 'string') {
    throw invalidArgument('tls.servername must be a string')
  }
  if (tls.rejectUnauthorized !== undefined && typeof tls.rejectUnauthorized !== 'boolean') {
    throw invalidArgument('tls.rejectUnauthorized must be a boolean')
  }
  return {
    ca: pem('ca', tls.ca),
    cert: pem('cert', tls.cert),
    key: pem('key', tls.key),
    servername: tls.servername,
    rejectUnauthorized: tls.rejectUnauthorized,
  }
}

class ReliableQueue extends EventEmitter {
  /**
   * @param {string} name
   * @param {import('./holdfast').QueueOptions} [options]
   */
  constructor(name, options) {
    super()
    if (typeof name !== 'string') throw invalidArgument('queue name must be a string')
    const opts = checkOptions('queue options', options)
    for (const key of ['url', 'mode', 'prefix', 'listKey', 'streamKey', 'group', 'groupStart']) {
      if (opts[key] !== undefined && typeof opts[key] !== 'string') throw invalidArgument(`${key} must be a string`)
    }
    checkNumber('maxPayloadBytes', opts.maxPayloadBytes)
    checkNumber('dedupWindowMs', opts.dedupWindowMs)
    const deadLetter = checkOptions('deadLetter', opts.deadLetter)
    checkNumber('deadLetter.maxLen', deadLetter.maxLen)
    checkNumber('deadLetter.maxAgeMs', deadLetter.maxAgeMs)
    const tls = tlsOptions(opts.tls)
    const sentinel = sentinelOptions(opts.sentinel)
    const cluster = clusterOptions(opts.cluster)
    const durable = opts.durable === undefined ? undefined : checkOptions('durable', opts.durable)
    if (durable) {
      checkNumber('durable.replicas', durable.replicas)
      checkNumber('durable.timeoutMs', durable.timeoutMs)
      if (durable.fsync !== undefined && typeof durable.fsync !== 'boolean') throw invalidArgument('durable.fsync must be a boolean')
    }
    // unset: the core's default (redis://127.0.0.1:6379)
    const url = opts.url ?? (process.env.REDIS_URL || undefined) // an empty REDIS_URL is unset
    try {
      this._native = new native.NativeQueue(name, {
        url,
        tls,
        sentinel,
        cluster,
        durable,
        mode: opts.mode,
        prefix: opts.prefix,
        listKey: opts.listKey,
        streamKey: opts.streamKey,
        group: opts.group,
        groupStart: opts.groupStart,
        maxPayloadBytes: opts.maxPayloadBytes,
        dedupWindowMs: opts.dedupWindowMs,
        deadLetterMaxLen: deadLetter.maxLen,
        deadLetterMaxAgeMs: deadLetter.maxAgeMs,
      })
    } catch (e) {
      throw fromNative(e)
    }
    this.name = name
    this._group = opts.mode === 'list' ? undefined : opts.group
    this._keepOutcomeMs = opts.keepOutcomeMs === undefined ? undefined : checkKeep(opts.keepOutcomeMs)
    this._key = this._native.identity
    this._maxPayloadBytes = this._native.maxPayloadBytes
    this._batch = null
    this._closed = false
    this._checked = false
    this.dead = new DeadLetters(this)
  }

  /**
   * Once, at first use: server settings that lose jobs or defeat an option (an evicting
   * maxmemory-policy, durable.fsync without AOF) become a 'warning' event on the queue and its
   * workers in this process, or a process warning when none of them listens. Tried again at
   * the next use if Redis did not answer.
   */
  _checkServer() {
    if (this._checked || this._closed) return
    this._checked = true
    this._native.serverWarnings().then(
      (warnings) => {
        for (const { code, message } of warnings) this._warn(Object.assign(new Error(message), { name: 'HoldfastWarning', code }))
      },
      () => {
        this._checked = false
      },
    )
  }

  _warn(warning) {
    const workers = this._localWorkers().filter((w) => w._queue === this && w.listenerCount('warning') > 0)
    if (this.listenerCount('warning') === 0 && workers.length === 0) return process.emitWarning(warning)
    if (this.listenerCount('warning') > 0) {
      try {
        this.emit('warning', warning)
      } catch (err) {
        process.nextTick(() => { throw err }) // as a throwing listener of any emitter
      }
    }
    for (const w of workers) w._emit('warning', warning)
  }

  /** Adds one job. Calls made in the same tick share one atomic round trip. */
  add(data, options) {
    if (this._closed) return Promise.reject(closedError('queue'))
    let payload, opts
    try {
      opts = checkJobOptions(options)
      payload = encode(data, this._maxPayloadBytes, 'job data ')
    } catch (e) {
      return Promise.reject(e)
    }
    let batch = this._batch
    if (batch === null) {
      batch = this._batch = { payloads: [], options: [], waiters: [] }
      queueMicrotask(() => this._flushAdds(batch))
    }
    if (typeof payload !== 'string') [payload, opts] = bytesColumns(payload, opts)
    if (opts.keepOutcomeMs === undefined && this._keepOutcomeMs) opts.keepOutcomeMs = this._keepOutcomeMs
    const i = batch.payloads.push(payload) - 1
    if (opts.jobId !== undefined || opts.maxAttempts !== undefined || opts.backoff !== undefined || opts.runAt !== undefined || opts.bytes || opts.keepOutcomeMs) {
      batch.options[i] = opts
    }
    const promise = new Promise((resolve, reject) => batch.waiters.push({ resolve, reject }))
    if (batch.payloads.length >= MAX_COALESCED) this._flushAdds(batch)
    return promise
  }

  _flushAdds(batch) {
    if (this._batch !== batch) return // already sent
    this._batch = null
    this._checkServer()
    const { payloads, waiters } = batch
    this._native.add(payloads, columns(payloads.length, (i) => batch.options[i])).then(
      (ids) => {
        for (let i = 0; i < waiters.length; i++) waiters[i].resolve(ids[i])
      },
      (err) => {
        const e = fromNative(err)
        for (const w of waiters) w.reject(e)
      },
    )
  }

  /**
   * Adds many jobs in one atomic round trip; if any item is invalid, none is added. `options`
   * apply to every item, except `jobIds`: one per item (undefined where an item has none).
   */
  async addBulk(items, options) {
    if (this._closed) throw closedError('queue')
    if (!Array.isArray(items)) throw invalidArgument('addBulk takes an array of job data')
    const { jobIds, ...common } = checkOptions('addBulk options', options)
    if (jobIds !== undefined && (!Array.isArray(jobIds) || jobIds.length !== items.length)) {
      throw invalidArgument('jobIds must be an array with one entry per item')
    }
    const shared = checkJobOptions(common)
    if (shared.keepOutcomeMs === undefined && this._keepOutcomeMs) shared.keepOutcomeMs = this._keepOutcomeMs
    const payloads = new Array(items.length)
    const itemOptions = new Array(items.length)
    for (let i = 0; i < items.length; i++) {
      const p = encode(items[i], this._maxPayloadBytes, `addBulk item ${i} `)
      if (typeof p === 'string') {
        payloads[i] = p
        itemOptions[i] = shared
      } else [payloads[i], itemOptions[i]] = bytesColumns(p, shared)
    }
    if (payloads.length === 0) return []
    const perItem = jobIds && jobIds.map((id) => (id === undefined || id === null ? undefined : checkJobId(id)))
    const cols = columns(payloads.length, (i) =>
      perItem && perItem[i] !== undefined ? { ...itemOptions[i], jobId: perItem[i] } : itemOptions[i],
    )
    return this._call((n) => n.add(payloads, cols))
  }

  /** Runs a native async call on an open queue, with its error moved to a coded one. */
  _call(fn) {
    if (this._closed) return Promise.reject(closedError('queue'))
    this._checkServer()
    return fn(this._native).catch((e) => {
      throw fromNative(e)
    })
  }

  /**
   * Stops fetching in every worker of this queue, in every process; in-flight jobs finish.
   * Resolves once this process's workers read nothing new (other processes' within ~0.2 s).
   */
  async pause() {
    await this._call((n) => n.pause())
    await Promise.all(this._localWorkers().map((w) => w._native.pauseHere()))
  }

  async resume() {
    await this._call((n) => n.resume())
    for (const w of this._localWorkers()) w._native.resumeHere()
  }

  /** This process's open workers of this queue, made by this object or another. */
  _localWorkers() {
    return [...(LOCAL_WORKERS.get(this._key) ?? [])]
  }

  /** Starts a worker in this process that runs `handler` for each job. */
  process(handler, options) {
    if (this._closed) throw closedError('queue')
    const worker = new Worker(this, handler, options)
    this._checkServer()
    return worker
  }

  /**
   * Counts (waiting, active, delayed, dead, workers, paused), the age of the next job to be
   * delivered (`oldestWaitingMs`), and every process's finished-job totals (`completed`,
   * `failed`, about a second behind).
   */
  async stats() {
    const s = await this._call((n) => n.stats())
    s.oldestWaitingMs ??= null
    for (const g of s.groups) {
      g.waiting ??= null
      g.oldestWaitingMs ??= null
    }
    return s
  }

  /** Prometheus text for this queue: its counts in Redis and this process's workers' counters. */
  async metrics() {
    if (this._closed) throw closedError('queue')
    return prometheus.render([await prometheus.sample(this)])
  }

  /**
   * Waits for a job to finish, in any process: `{ state: 'completed', result }` or
   * `{ state: 'dead', error }`. Only jobs added with `keepOutcomeMs` record their outcome;
   * rejects with ERR_HOLDFAST_TIMEOUT when none came within `timeoutMs` (30 s by default).
   */
  async waitFor(id, options) {
    if (typeof id !== 'string' || id === '') throw invalidArgument('waitFor takes a job id (a non-empty string)')
    const { timeoutMs = 30_000 } = checkOptions('waitFor options', options)
    if (!(Number.isInteger(timeoutMs) && timeoutMs >= 0 && timeoutMs <= 0x7fffffff)) throw invalidArgument('timeoutMs must be a whole number of ms >= 0')
    const outcome = await this._call((n) => n.waitFor(id, timeoutMs))
    if (outcome === null) {
      throw new HoldfastError(
        'ERR_HOLDFAST_TIMEOUT',
        `job ${JSON.stringify(id)} did not finish within ${timeoutMs} ms (or it was added without keepOutcomeMs, or its outcome expired)`,
      )
    }
    return outcome.state === 'completed' ? { state: 'completed', result: decodeResult(outcome.result) } : { state: 'dead', error: outcome.error }
  }

  /**
   * Where a job is now: `{ id, state }` with state 'waiting', 'active', 'delayed', 'completed',
   * 'dead' or 'unknown', and what is known: `data`, `attempt`, `result`, `error`, `failedAt`,
   * `runAt`. Reads the queue page by page when the job has no recorded outcome: see the README.
   */
  async getJob(id) {
    if (typeof id !== 'string' || id === '') throw invalidArgument('getJob takes a job id (a non-empty string)')
    const s = await this._call((n) => n.getJob(id))
    const job = { id, state: s.state }
    if (s.bytes) job.data = s.bytes
    else if (s.payload != null) job.data = decode(s.payload)
    if (s.attempt != null) job.attempt = s.attempt
    if (s.result != null) job.result = decodeResult(s.result)
    if (s.error != null) job.error = s.error
    if (s.failedAt != null) job.failedAt = new Date(s.failedAt)
    if (s.dueAt != null) job.runAt = new Date(s.dueAt)
    return job
  }

  /** The next jobs workers will be given, oldest first: `{ id, data, attempt }` (nothing is taken). */
  async peek(options) {
    const { limit = 10 } = checkOptions('peek options', options)
    if (!Number.isInteger(limit) || limit < 0 || limit > 10_000) throw invalidArgument('limit must be a whole number from 0 to 10000')
    const jobs = await this._call((n) => n.peek(limit))
    return jobs.map(({ id, payload, bytes, attempt }) => ({ id, data: bytes ?? decode(payload), attempt }))
  }

  /**
   * Closes this queue's workers gracefully (see Worker#close; `timeoutMs` bounds each), then the
   * queue. Never rejects because Redis is unreachable. Idempotent.
   */
  async close(options) {
    const { timeoutMs } = checkCloseOptions(options)
    const total = { timedOut: 0, leftToLeaseExpiry: 0 }
    if (this._closed) return total
    this._closed = true
    if (this._batch) this._flushAdds(this._batch)
    const results = await Promise.all(this._localWorkers().filter((w) => w._queue === this).map((w) => w.close({ timeoutMs })))
    this._native.close()
    for (const r of results) {
      total.timedOut += r.timedOut
      total.leftToLeaseExpiry += r.leftToLeaseExpiry
    }
    return total
  }
}

/** The dead letters of a queue: `queue.dead`. */
class DeadLetters {
  constructor(queue) {
    this._queue = queue
  }

  /** A page, newest first: `{ id, data, error, attempts, failedAt }` items. */
  async list(options) {
    const { limit = 100, offset = 0 } = checkOptions('dead.list options', options)
    for (const [name, v] of [['limit', limit], ['offset', offset]]) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw invalidArgument(`${name} must be a whole number >= 0`)
    }
    const items = await this._queue._call((n) => n.deadPage(offset, limit))
    return items.map(({ id, payload, bytes, error, attempts, failedAt }) => ({
      id,
      data: bytes ?? decode(payload),
      error,
      attempts,
      failedAt: new Date(failedAt),
    }))
  }

  /** Moves dead letters back to the queue as fresh jobs (attempt 1). Resolves to how many moved. */
  async retry(ids) {
    if (ids !== 'all' && !(Array.isArray(ids) && ids.every((id) => typeof id === 'string'))) {
      throw invalidArgument("dead.retry takes an array of job ids, or 'all'")
    }
    return this._queue._call((n) => n.deadRetry(ids === 'all' ? null : ids))
  }

  /** Deletes every dead letter. Resolves to how many there were. */
  purge() {
    return this._queue._call((n) => n.deadPurge())
  }
}

/** A recorded result: the handler's return value as JSON, '' for undefined. */
function decodeResult(text) {
  return text === '' || text == null ? undefined : JSON.parse(text)
}

function decode(payload) {
  try {
    return JSON.parse(payload)
  } catch {
    // added by another client as a plain string; a copy, so that keeping it does not keep the
    // whole batch's payload text (a slice would)
    return Buffer.from(payload, 'utf8').toString('utf8')
  }
}

/** What a handler receives. `signal` is created on first use. */
class Job {
  constructor(id, data, attempt, maxAttempts) {
    this.id = id
    this.data = data
    this.attempt = attempt
    this.maxAttempts = maxAttempts
    this._controller = null
  }

  get signal() {
    this._controller ??= new AbortController()
    return this._controller.signal
  }

  _abort(reason) {
    this._controller ??= new AbortController()
    this._controller.abort(reason)
  }
}

/** `instanceof Error`, false where even asking throws (a hostile Proxy). */
function isError(v) {
  try {
    return v instanceof Error
  } catch {
    return false
  }
}

/** Failure reasons are stored with the job (retries, dead letters): this many chars at most. */
const MAX_REASON = 4096

/** The reason stored for a failure: never throws, whatever was thrown, and bounded. */
function errorMessage(err) {
  let text
  try {
    if (isError(err)) text = String(err.message || err.name || 'Error')
    else if (typeof err === 'string') text = err
    else text = `non-Error thrown: ${JSON.stringify(err) ?? String(err)}`
  } catch {
    try {
      text = `non-Error thrown: ${String(err)}`
    } catch {
      text = 'non-Error thrown, which could not be turned into text'
    }
  }
  return text.length > MAX_REASON ? `${text.slice(0, MAX_REASON)}... (${text.length - MAX_REASON} more characters)` : text
}

class Worker extends EventEmitter {
  constructor(queue, handler, options) {
    super()
    if (typeof handler !== 'function') throw invalidArgument('process() needs a handler function: queue.process(async (job) => { ... })')
    const opts = checkOptions('process options', options)
    const nativeOpts = {}
    for (const key of ['concurrency', 'visibilityTimeoutMs', 'maxAttempts', 'maxDeliveries', 'blockMs', 'prefetch']) {
      checkNumber(key, opts[key])
      nativeOpts[key] = opts[key]
    }
    checkNumber('handlerTimeoutMs', opts.handlerTimeoutMs)
    if (opts.handlerTimeoutMs !== undefined && !(opts.handlerTimeoutMs > 0)) throw invalidArgument('handlerTimeoutMs must be greater than 0')
    this._backoff = checkBackoff(opts.backoff, { allowFunction: true })
    this._timeoutMs = opts.handlerTimeoutMs
    this._queue = queue
    this._handler = handler
    this._ok = []
    this._failed = []
    this._reasons = []
    this._delays = []
    this._returned = []
    this._results = []
    this._flushQueued = false
    this._closing = null
    this._lastWarning = 0
    try {
      this._native = queue._native.createWorker(
        nativeOpts,
        (batch) => this._onJobs(batch),
        (event) => this._onEvent(event),
      )
    } catch (e) {
      throw fromNative(e)
    }
    this.id = this._native.id
    this._maxAttempts = this._native.maxAttempts
    const local = LOCAL_WORKERS.get(queue._key) ?? new Set()
    LOCAL_WORKERS.set(queue._key, local.add(this))
  }

  _onJobs({ numbers, ids, payloads, backoffs, binaries, keeps }) {
    const n = numbers.length / 5
    let idStart = 0
    let payloadStart = 0
    for (let i = 0; i < n; i++) {
      const id = ids.slice(idStart, (idStart = numbers[n + i]))
      const payload = payloads.slice(payloadStart, (payloadStart = numbers[2 * n + i]))
      const data = binaries && binaries[i] ? binaries[i] : decode(payload)
      const job = new Job(id, data, numbers[3 * n + i], numbers[4 * n + i] || this._maxAttempts)
      if (backoffs && backoffs[i]) job._backoff = fromSpec(backoffs[i])
      if (keeps && keeps[i]) job._keep = true
      this._run(numbers[i], job)
    }
  }

  _run(token, job) {
    let settled = false
    let timer = null
    const finish = (ok, value) => {
      if (settled) return // a handler that settles after its timeout changes nothing
      settled = true
      if (timer !== null) clearTimeout(timer)
      this._finish(token, job, ok, value)
    }
    if (this._timeoutMs !== undefined) {
      timer = setTimeout(() => {
        const err = new HoldfastError('ERR_HOLDFAST_HANDLER_TIMEOUT', `handler timed out after ${this._timeoutMs} ms`)
        job._abort(err)
        finish(false, err) // frees the slot now; the handler should stop on job.signal
      }, this._timeoutMs)
    }
    try {
      const result = this._handler(job)
      if (result === null || (typeof result !== 'object' && typeof result !== 'function')) {
        finish(true, result)
        return
      }
      // Adopted as `await` would: a `then` that throws, or a `then` getter that throws, rejects
      // this job alone; an object without `then` is the result.
      Promise.resolve(result).then(
        (value) => finish(true, value),
        (err) => finish(false, err),
      )
    } catch (err) {
      finish(false, err)
    }
  }

  _finish(token, job, ok, value) {
    // first: whatever the events below run into, the outcome gets reported
    if (!this._flushQueued) {
      this._flushQueued = true
      queueMicrotask(() => this._flushCompletions())
    }
    if (ok) {
      if (job._keep) {
        this._returned.push(token)
        this._results.push(this._encodeResult(job, value))
      } else this._ok.push(token)
      if (this.listenerCount('completed') > 0) this._emit('completed', job, value)
    } else {
      const willRetry = job.attempt < job.maxAttempts
      const delay = willRetry ? delayFor(job._backoff ?? this._backoff, job.attempt, value, (e) => this._emit('error', e)) : 0
      this._failed.push(token)
      this._reasons.push(errorMessage(value))
      this._delays.push(delay)
      if (this.listenerCount('failed') > 0 || (willRetry && this.listenerCount('retrying') > 0)) {
        const err = isError(value) ? value : new Error(errorMessage(value), { cause: value })
        this._emit('failed', job, err, willRetry)
        if (willRetry) this._emit('retrying', job, err, delay)
      }
    }
  }

  /**
   * A result to record for `waitFor`: JSON, '' for undefined. One JSON cannot carry, or over
   * the queue's payload limit, is recorded as '' and reported as an 'error' event.
   */
  _encodeResult(job, value) {
    let text
    try {
      text = value === undefined ? '' : JSON.stringify(value) ?? ''
    } catch (e) {
      this._emit('error', new HoldfastError('ERR_HOLDFAST_INVALID_PAYLOAD', `job ${job.id}: its result cannot be encoded as JSON (${e.message}); recorded without it`))
      return ''
    }
    const limit = this._queue._maxPayloadBytes
    if (text.length * 3 > limit && Buffer.byteLength(text) > limit) {
      this._emit('error', new HoldfastError('ERR_HOLDFAST_PAYLOAD_TOO_LARGE', `job ${job.id}: its result is over the ${limit}-byte limit; recorded without it`))
      return ''
    }
    return text
  }

  /** One native call per tick reports every job finished in it. */
  _flushCompletions() {
    this._flushQueued = false
    const ok = Uint32Array.from(this._ok)
    const failed = Uint32Array.from(this._failed)
    const reasons = this._reasons
    const delays = Uint32Array.from(this._delays)
    const returned = this._returned.length > 0 ? Uint32Array.from(this._returned) : undefined
    const results = returned && this._results
    this._ok = []
    this._failed = []
    this._reasons = []
    this._delays = []
    if (returned) {
      this._returned = []
      this._results = []
    }
    let next = null
    try {
      next = this._native.complete(ok, failed, reasons, delays, returned, results)
    } catch (e) {
      const err = fromNative(e)
      // a handler that outlived close({ timeoutMs }): its job went back to the queue already
      if (!(this._closing && err.code === 'ERR_HOLDFAST_CLOSED')) this._emit('error', err)
    }
    // prefetched jobs for the slots just freed come back at once, without a round trip
    if (next) this._onJobs(next)
  }

  _onEvent({ kind, code, message, ids }) {
    if (kind === 'error') this._emit('error', new HoldfastError(code, message))
    else if (kind === 'stalled') for (const id of ids) this._emit('stalled', id)
    else if (kind === 'dead') this._emit('dead', ids[0], message)
  }

  /** A listener that throws must not break the worker; with no 'error' listener, warn instead of crashing. */
  _emit(event, ...args) {
    if (event === 'error' && this.listenerCount('error') === 0) {
      const now = Date.now()
      if (now - this._lastWarning > 5000) {
        this._lastWarning = now
        process.emitWarning(`holdfast worker: ${args[0].message} (add worker.on('error') to handle these)`, { code: args[0].code })
      }
      return
    }
    try {
      this.emit(event, ...args)
    } catch (err) {
      if (event !== 'error') this._emit('error', err)
    }
  }

  /**
   * Stops fetching, waits for jobs in flight (at most `timeoutMs`: then their jobs go back to
   * the queue, and their handlers' late outcomes are ignored), flushes acks. Never rejects
   * because Redis is unreachable: that is reported as `error` events, and the result counts
   * the jobs left to lease expiry. Idempotent: a second call returns the first's result.
   */
  close(options) {
    let timeoutMs
    try {
      ;({ timeoutMs } = checkCloseOptions(options))
    } catch (e) {
      return Promise.reject(e)
    }
    this._closing ??= this._native.close(timeoutMs).then(
      (result) => {
        this._forget()
        return result
      },
      (e) => {
        this._forget()
        throw fromNative(e)
      },
    )
    return this._closing
  }

  _forget() {
    const local = LOCAL_WORKERS.get(this._queue._key)
    local?.delete(this)
    if (local?.size === 0) LOCAL_WORKERS.delete(this._queue._key)
  }
}

/** Prometheus text for several queues at once (each metric family once, as the format requires). */
async function metrics(queues) {
  if (!Array.isArray(queues) || !queues.every((q) => q instanceof ReliableQueue)) {
    throw invalidArgument('metrics() takes an array of ReliableQueue objects')
  }
  for (const q of queues) if (q._closed) throw closedError('queue')
  return prometheus.render(await Promise.all(queues.map(prometheus.sample)))
}

/**
 * The queues that have keys under a prefix, by name: `[{ name, mode }]` (`mode` null when
 * their keys do not tell). Takes the connection options of a queue (url, prefix, tls, ...).
 * SCANs the keyspace: for tools, not for hot paths.
 */
async function listQueues(options) {
  // a queue object only to reach Redis with these options: its name is never used in a key
  const probe = new ReliableQueue('holdfast-list-queues', options)
  try {
    return await probe._call((n) => n.findQueues())
  } finally {
    await probe.close()
  }
}

module.exports = { ReliableQueue, Worker, Job, DeadLetters, HoldfastError, metrics, listQueues, METRICS_CONTENT_TYPE: prometheus.CONTENT_TYPE }
