// Types of the user-facing API (lib/holdfast.js), written by hand because they carry the
// generics; the native binding's generated types are in ../binding.d.ts. They name nothing from
// @types/node or the DOM, so a strict project without either type-checks.

type Primitive = string | number | boolean | null | undefined
/** Values JSON would turn into something else: `{}`, a string, `{ type, data }`, or a throw. */
type NotJson =
  | Date
  | RegExp
  | Map<unknown, unknown>
  | Set<unknown>
  | WeakMap<object, unknown>
  | WeakSet<object>
  | Promise<unknown>
  | ArrayBuffer
  | ArrayBufferView
  | ((...args: never[]) => unknown)
  | bigint
  | symbol
type JsonSafe<T> = T extends Primitive ? T : T extends NotJson ? never : T extends object ? { [K in keyof T]: JsonSafe<T[K]> } : never

/**
 * What a queue's payload type must satisfy: data that survives JSON (objects, arrays, strings,
 * numbers, booleans, null), or bytes as the whole payload (`Uint8Array`, `Buffer`). A type with
 * a `Date`, `Map`, `Set`, function, `bigint` or a nested `Uint8Array` anywhere in it does not
 * satisfy it, so `ReliableQueue<{ at: Date }>` is a compile error: send a Date as an ISO string
 * or unix ms.
 */
export type Payload<T> = { [K in keyof T]: T extends Uint8Array ? T[K] : JsonSafe<T[K]> }

/** `AbortSignal` where the project has its type (DOM lib or @types/node), else its core. */
export type JobSignal = typeof globalThis extends { AbortSignal: { prototype: infer S } }
  ? S
  : {
      readonly aborted: boolean
      readonly reason: unknown
      addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void
      removeEventListener(type: 'abort', listener: () => void): void
    }

/** PEM text or bytes (a `Buffer` is a `Uint8Array`), or several of them, as node:tls takes them. */
export type Pem = string | Uint8Array | Array<string | Uint8Array>

/** TLS settings, named as node:tls, ioredis and node-redis name them. */
export interface TlsOptions {
  /** CA certificates to trust instead of Mozilla's roots (the ones Node.js bundles). */
  ca?: Pem
  /** Client certificate chain, for mutual TLS (with `key`). */
  cert?: Pem
  /** Private key of `cert`, not encrypted. */
  key?: Pem
  /** The name the server's certificate must carry (and the SNI), when not the url's host. */
  servername?: string
  /** `false` accepts any server certificate: encrypted, not authenticated. Default `true`. */
  rejectUnauthorized?: boolean
}

/** Redis Sentinel: where to ask for the master. */
export interface SentinelOptions {
  /** The name the sentinels monitor the master under (`sentinel monitor <name> ...`). */
  masterName: string
  /**
   * Sentinels, asked in order until one names the master: `'host:port'` (port 26379 when
   * omitted) or `redis[s]://[[user]:password@]host:port` urls for sentinels with a password.
   */
  nodes: string[]
}

export interface DurableOptions {
  /** Replicas that must have each job (with `fsync`: fsynced to their AOF). Default 0. */
  replicas?: number
  /** The master must have fsynced each job to its append-only file. Default false. */
  fsync?: boolean
  /** Longest wait for the confirmation, ms. Default 2000. */
  timeoutMs?: number
}

export interface QueueOptions {
  /**
   * Default: process.env.REDIS_URL, else redis://127.0.0.1:6379. `rediss://` turns TLS on, with
   * Mozilla's roots unless `tls.ca` says otherwise.
   */
  url?: string
  /** TLS on every connection, for a `redis://` url too. `true` is `{}`. */
  tls?: TlsOptions | boolean
  /**
   * Find the master through Redis Sentinel, anew on every connect: after a failover, workers
   * and producers reconnect to the new master by themselves. `url` then gives only the master's
   * user, password, database and scheme (`rediss://`), not its address; TLS applies to the
   * sentinels too.
   */
  sentinel?: SentinelOptions
  /**
   * Redis Cluster seed nodes: `'host:port'` (port 6379 when omitted) or `redis[s]://` urls. A
   * queue's keys share its hash tag, so it lives in one slot; every connection goes to the
   * master that owns it (asked with `CLUSTER SLOTS`), follows `MOVED` / `ASK` while the slot
   * moves, and finds the new master after a failover. `url` then gives only the user, password
   * and scheme; `tls` and credentials apply to every node.
   */
  cluster?: string[]
  /**
   * `add` and `addBulk` resolve only once Redis confirms the jobs are on `replicas` replicas
   * (`WAIT`) and / or fsynced to the master's append-only file (`fsync`, `WAITAOF`: Redis 7.2+
   * or Valkey, with `appendonly yes`), within `timeoutMs` (default 2000); else they reject with
   * `ERR_HOLDFAST_NOT_DURABLE` (the job may still be in Redis).
   */
  durable?: DurableOptions
  /**
   * 'stream' (default): Redis Streams consumer groups. 'list': the reliable two-list queue
   * (LMOVE into per-worker processing lists), compatible with producers that LPUSH.
   */
  mode?: 'stream' | 'list'
  /**
   * List mode only: consume this existing list, e.g. one other clients fill with
   * `LPUSH jobs:email '<json>'`. Default `<prefix>:{<name>}:wait`.
   */
  listKey?: string
  /**
   * Stream mode only: consume this existing stream, e.g. one other clients fill with
   * `XADD jobs:stream * type email to user@example.com`. Default `<prefix>:{<name>}:stream`.
   * In a Redis Cluster it must carry the queue's hash tag (`{<name>}`).
   */
  streamKey?: string
  /**
   * Stream mode: the consumer group this queue's workers join, created when missing (an
   * existing group, another program's too, is joined as it is, never re-created or deleted).
   * Queues with different groups on one stream each get every job. Default 'workers'.
   */
  group?: string
  /**
   * Where a group this queue creates starts reading: 'earliest' (default: the stream's first
   * entry, so jobs added before any worker ran are kept) or 'latest' (entries added after it).
   */
  groupStart?: 'earliest' | 'latest'
  /** Key prefix: keys are `<prefix>:{<name>}:<part>`. Default 'holdfast'. */
  prefix?: string
  /** Largest payload accepted by add/addBulk: its JSON text, or its bytes. Default 512 KiB. */
  maxPayloadBytes?: number
  /** An add with a jobId seen within this window adds nothing. Default 24 h. */
  dedupWindowMs?: number
  /** Caps of the dead letters. Defaults: 10 000 entries, 7 days. */
  deadLetter?: { maxLen?: number; maxAgeMs?: number }
  /**
   * Every job added through this object keeps its outcome (result or error) this many ms once
   * it finishes, for `waitFor` and `getJob` (unless its add says otherwise). Off by default.
   */
  keepOutcomeMs?: number
}

/** Delay between attempts: `fixed` waits `delayMs`; `exponential` waits `delayMs * 2^(attempt-1)`. */
export interface BackoffOptions {
  type: 'fixed' | 'exponential'
  delayMs: number
  /** Upper bound of one delay. */
  maxDelayMs?: number
  /** 0..1: each delay is shortened by up to this fraction, at random. */
  jitter?: number
}

/** `(attempt, error) => ms`: the delay after failed attempt `attempt` (1-based). */
export type BackoffFunction = (attempt: number, error: Error) => number

export interface JobOptions {
  /**
   * Your id for the job (kept across retries); returned by add. Adding a jobId seen within the
   * queue's dedupWindowMs adds nothing and returns that jobId.
   */
  jobId?: string
  /** Overrides the worker's maxAttempts for this job. */
  maxAttempts?: number
  /** Overrides the worker's backoff for this job. */
  backoff?: BackoffOptions
  /** Start no sooner than this many ms from now. */
  delayMs?: number
  /** Start no sooner than this time (a Date, or unix ms). */
  runAt?: Date | number
  /**
   * Keep the job's outcome (its handler's result as JSON, or its last error) this many ms once it
   * finishes, for `waitFor` and `getJob` in any process; 0: keep nothing. Default: the queue's.
   */
  keepOutcomeMs?: number
}

/** How a job that keeps its outcome finished: `queue.waitFor()`. */
export type JobOutcome<R = any> = { state: 'completed'; result: R } | { state: 'dead'; error: string }

/** Where a job is: `queue.getJob()`. */
export interface JobStatus<T = any, R = any> {
  id: string
  /** 'completed' only for jobs that keep their outcome; 'unknown': not found (see the README). */
  state: 'waiting' | 'active' | 'delayed' | 'completed' | 'dead' | 'unknown'
  /** The job's data, where it is stored (waiting, active, delayed, dead letters). */
  data?: T
  attempt?: number
  result?: R
  error?: string
  /** When a dead letter failed. */
  failedAt?: Date
  /** When a delayed job is due. */
  runAt?: Date
}

export interface BulkOptions extends Omit<JobOptions, 'jobId'> {
  /** One per item (undefined where an item has none). */
  jobIds?: ReadonlyArray<string | undefined>
}

export interface DeadJob<T = any> {
  id: string
  data: T
  error: string
  attempts: number
  failedAt: Date
}

export interface DeadLetters<T = any> {
  /** A page of dead letters, newest first. Defaults: limit 100, offset 0. */
  list(options?: { limit?: number; offset?: number }): Promise<DeadJob<T>[]>
  /** Moves them back to the queue as fresh jobs (attempt 1); resolves to how many moved. */
  retry(ids: readonly string[] | 'all'): Promise<number>
  /** Deletes every dead letter; resolves to how many there were. */
  purge(): Promise<number>
}

export interface ProcessOptions {
  /** Jobs in flight at once in this worker. Default 64. */
  concurrency?: number
  /**
   * Lease length in ms. Default 3000. A worker that dies (or cannot reach Redis) for this long
   * has its jobs run elsewhere; Rust timers renew the lease while the handler runs, so it does
   * not limit how long a handler may run.
   */
  visibilityTimeoutMs?: number
  /** Handler runs per job (the first included) before it goes to dead. Default 3. */
  maxAttempts?: number
  /** Deliveries of one entry (worker crashes, expired leases) before it goes to dead. Default 5. */
  maxDeliveries?: number
  /** How long one blocking read waits for new jobs, in ms; close() and pause() wake it with CLIENT UNBLOCK (without that permission they wait for it). Default 5000. */
  blockMs?: number
  /**
   * Jobs fetched ahead of free handler slots, so the next jobs are at hand when handlers finish
   * (they are held, with their leases renewed, like jobs in flight). Default: adaptive, from
   * `concurrency` up to 10 x `concurrency` while handlers finish that many within 50 ms, back to
   * `concurrency` after the queue runs dry. A number fixes it; 0 turns it off.
   */
  prefetch?: number
  /** Delay between attempts. Default: none (a failed job is re-queued at once). */
  backoff?: BackoffOptions | BackoffFunction
  /**
   * A handler still running after this many ms has failed: `job.signal` aborts, the slot is
   * freed, and retries and backoff apply. The handler itself is not stopped: watch `job.signal`.
   */
  handlerTimeoutMs?: number
}

export interface Job<T = any> {
  /** The jobId given to add, else the id add returned. Stable across attempts. */
  readonly id: string
  readonly data: T
  /** 1-based. */
  readonly attempt: number
  /** Attempts this job gets in all (its own maxAttempts, else the worker's). */
  readonly maxAttempts: number
  /** Aborted when the handler times out (handlerTimeoutMs). */
  readonly signal: JobSignal
}

export interface QueueStats {
  /** Added, not yet delivered. */
  waiting: number
  /** Delivered, not yet finished. */
  active: number
  delayed: number
  dead: number
  /** Workers with a recent heartbeat. */
  workers: number
  /** queue.pause() was called (and not yet resume()). */
  paused: boolean
  /**
   * How long the next job to be delivered has waited, in ms; null when nothing waits, or when it
   * cannot be dated (list mode: a job added with a `jobId`, or raw data from another producer).
   */
  oldestWaitingMs: number | null
  /** Jobs completed by every process's workers, ever (each process adds its count about once a second). */
  completed: number
  /** Handler failures (retried or dead-lettered) in every process, ever; as `completed`. */
  failed: number
  /**
   * Stream mode: every consumer group reading the stream (this queue's and the others' fanned
   * out from it), each of which gets every job. Empty in list mode.
   */
  groups: GroupStats[]
}

/** One consumer group of a stream, from `stats().groups`. */
export interface GroupStats {
  name: string
  /** Consumers Redis knows in the group (holdfast's live and dead workers, and other programs'). */
  consumers: number
  /** Delivered to this group, not yet finished by it. */
  active: number
  /** Not yet delivered to this group: its lag. null when Redis cannot tell (before 7.0). */
  waiting: number | null
  /** How long the next job this group is to get has waited, in ms; null when none waits. */
  oldestWaitingMs: number | null
}

/** A job still waiting, from `queue.peek()`. */
export interface WaitingJob<T = any> {
  id: string
  data: T
  attempt: number
}

/** A queue found by `listQueues()`. */
export interface FoundQueue {
  name: string
  /** What its keys say; null when they do not tell (only delayed jobs, dead letters, workers or flags). */
  mode: 'stream' | 'list' | null
}

/** The stable codes of holdfast's errors; README.md says what each means. */
export type HoldfastErrorCode =
  | 'ERR_HOLDFAST_INVALID_ARGUMENT'
  | 'ERR_HOLDFAST_INVALID_PAYLOAD'
  | 'ERR_HOLDFAST_PAYLOAD_TOO_LARGE'
  | 'ERR_HOLDFAST_CONNECTION'
  | 'ERR_HOLDFAST_AUTH'
  | 'ERR_HOLDFAST_REDIS_FULL'
  | 'ERR_HOLDFAST_NOT_DURABLE'
  | 'ERR_HOLDFAST_WRONG_TYPE'
  | 'ERR_HOLDFAST_CLOSED'
  | 'ERR_HOLDFAST_HANDLER_TIMEOUT'
  | 'ERR_HOLDFAST_REDIS'
  | 'ERR_HOLDFAST_NATIVE_MISSING'
  | 'ERR_HOLDFAST_NATIVE_LOAD'

/**
 * Every error holdfast creates carries a stable `code`. Bad arguments and payloads are
 * `TypeError`s; `instanceof HoldfastError` is true for them too.
 */
export declare class HoldfastError extends Error {
  constructor(code: HoldfastErrorCode, message: string, options?: { cause?: unknown })
  readonly code: HoldfastErrorCode
}

/**
 * A server setting that loses jobs or defeats an option, found once at the queue's first use:
 * `HOLDFAST_EVICTION` (an evicting `maxmemory-policy`) or `HOLDFAST_NO_AOF` (`durable.fsync`
 * with `appendonly no`). Emitted as `warning` on the queue and its workers, or through
 * `process.emitWarning` when none of them listens.
 */
export interface HoldfastWarning extends Error {
  readonly name: 'HoldfastWarning'
  readonly code: 'HOLDFAST_EVICTION' | 'HOLDFAST_NO_AOF'
}

/** The events of a ReliableQueue and their listeners' arguments. */
export interface QueueEvents {
  warning: (warning: HoldfastWarning) => void
}

/** The events of a Worker and their listeners' arguments. */
export interface WorkerEvents<T> {
  /** The handler resolved. */
  completed: (job: Job<T>, result: unknown) => void
  /** The handler threw, rejected or timed out; non-Errors arrive wrapped, with `cause`. */
  failed: (job: Job<T>, error: Error, willRetry: boolean) => void
  /** A failed job will run again after `delayMs`. */
  retrying: (job: Job<T>, error: Error, delayMs: number) => void
  /** A job recovered from a dead worker or an expired lease. */
  stalled: (jobId: string) => void
  /** A job moved to the dead letters. */
  dead: (jobId: string, reason: string) => void
  /** A Redis or connection problem; the worker backs off, reconnects and keeps going. */
  error: (error: HoldfastError) => void
  /** A server setting that loses jobs (see `HoldfastWarning`), once per queue. */
  warning: (warning: HoldfastWarning) => void
}

/** A worker: a Node EventEmitter (typed here without @types/node) running one handler. */
export declare class Worker<T = any> {
  /** Unique per process run; the consumer name in Redis. */
  readonly id: string
  on<E extends keyof WorkerEvents<T>>(event: E, listener: WorkerEvents<T>[E]): this
  once<E extends keyof WorkerEvents<T>>(event: E, listener: WorkerEvents<T>[E]): this
  off<E extends keyof WorkerEvents<T>>(event: E, listener: WorkerEvents<T>[E]): this
  addListener<E extends keyof WorkerEvents<T>>(event: E, listener: WorkerEvents<T>[E]): this
  removeListener<E extends keyof WorkerEvents<T>>(event: E, listener: WorkerEvents<T>[E]): this
  prependListener<E extends keyof WorkerEvents<T>>(event: E, listener: WorkerEvents<T>[E]): this
  prependOnceListener<E extends keyof WorkerEvents<T>>(event: E, listener: WorkerEvents<T>[E]): this
  removeAllListeners(event?: keyof WorkerEvents<T>): this
  emit<E extends keyof WorkerEvents<T>>(event: E, ...args: Parameters<WorkerEvents<T>[E]>): boolean
  listenerCount(event: keyof WorkerEvents<T>): number
  listeners<E extends keyof WorkerEvents<T>>(event: E): Array<WorkerEvents<T>[E]>
  rawListeners<E extends keyof WorkerEvents<T>>(event: E): Array<WorkerEvents<T>[E]>
  eventNames(): Array<keyof WorkerEvents<T>>
  setMaxListeners(n: number): this
  getMaxListeners(): number
  /**
   * Stop fetching, wait for jobs in flight (at most `timeoutMs`: then their jobs go back to the
   * queue and their handlers' late outcomes are ignored), flush acks, remove the heartbeat.
   * Never rejects because Redis is unreachable: that arrives as `error` events, and the result
   * counts what was left to lease expiry.
   */
  close(options?: CloseOptions): Promise<CloseResult>
}

export interface CloseOptions {
  /** Longest wait for handlers in flight, in ms. Default: no limit. */
  timeoutMs?: number
}

/** What a close could not do cleanly (all 0 after a clean close). */
export interface CloseResult {
  /** Handlers still running at `timeoutMs`: their jobs went back to the queue at once. */
  timedOut: number
  /** Jobs whose outcome could not be written (Redis unreachable): they run again once their leases expire. */
  leftToLeaseExpiry: number
}

/**
 * A queue, and the producer and worker factory for it. `T` is the payload type: it must survive
 * JSON or be bytes (see `Payload`); without it, payloads are `any`.
 */
export declare class ReliableQueue<T extends Payload<T> = any> {
  constructor(name: string, options?: QueueOptions)
  readonly name: string
  /** A Node EventEmitter (typed here without @types/node): its one event is `warning`. */
  on<E extends keyof QueueEvents>(event: E, listener: QueueEvents[E]): this
  once<E extends keyof QueueEvents>(event: E, listener: QueueEvents[E]): this
  off<E extends keyof QueueEvents>(event: E, listener: QueueEvents[E]): this
  addListener<E extends keyof QueueEvents>(event: E, listener: QueueEvents[E]): this
  removeListener<E extends keyof QueueEvents>(event: E, listener: QueueEvents[E]): this
  removeAllListeners(event?: keyof QueueEvents): this
  listenerCount(event: keyof QueueEvents): number
  add(data: T, options?: JobOptions): Promise<string>
  addBulk(items: readonly T[], options?: BulkOptions): Promise<string[]>
  /**
   * Stops fetching in every worker of this queue, in every process; in-flight jobs finish.
   * Resolves once this process's workers read nothing new (other processes' follow within ~0.2 s).
   */
  pause(): Promise<void>
  resume(): Promise<void>
  readonly dead: DeadLetters<T>
  process(handler: (job: Job<T>) => unknown, options?: ProcessOptions): Worker<T>
  stats(): Promise<QueueStats>
  /**
   * Prometheus text exposition: the queue's counts from Redis (every process) and this process's
   * workers' counters and job duration histogram. Serve it with `METRICS_CONTENT_TYPE`.
   */
  metrics(): Promise<string>
  /**
   * Waits for a job to finish, in any process. Only jobs added with `keepOutcomeMs` record an
   * outcome; rejects with ERR_HOLDFAST_TIMEOUT after `timeoutMs` (30 s by default).
   */
  waitFor<R = any>(id: string, options?: { timeoutMs?: number }): Promise<JobOutcome<R>>
  /** Where a job is now; reads the queue page by page unless its outcome was kept (see the README). */
  getJob<R = any>(id: string): Promise<JobStatus<T, R>>
  /** The next jobs workers will be given, oldest first (nothing is taken). `limit`: 10 by default. */
  peek(options?: { limit?: number }): Promise<WaitingJob<T>[]>
  /** Closes this queue's workers as `Worker#close` does (`timeoutMs` bounds each), then the queue. */
  close(options?: CloseOptions): Promise<CloseResult>
}

/** Prometheus text for several queues, each metric family once (as the format requires). */
export declare function metrics(queues: readonly ReliableQueue[]): Promise<string>
/** The Content-Type to serve `metrics()` text with. */
export declare const METRICS_CONTENT_TYPE: string
/**
 * The queues with keys under a prefix (`holdfast` by default), sorted by name. Takes a queue's
 * connection options. SCANs the keyspace (needs `+scan`): for tools, not hot paths.
 */
export declare function listQueues(options?: QueueOptions): Promise<FoundQueue[]>
