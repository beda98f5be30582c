// Types of the user-facing API (lib/holdfast.js). The native binding's generated types are in
// ../index.d.ts; this file is written by hand because it carries the generics.
import { EventEmitter } from 'node:events'

export interface QueueOptions {
  /** Default: process.env.REDIS_URL, else redis://127.0.0.1:6379. */
  url?: string
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
  /** Key prefix: keys are `<prefix>:{<name>}:<part>`. Default 'holdfast'. */
  prefix?: string
  /** Largest JSON-encoded payload accepted by add/addBulk. Default 512 KiB. */
  maxPayloadBytes?: number
  /** An add with a jobId seen within this window adds nothing. Default 24 h. */
  dedupWindowMs?: number
  /** Caps of the dead letters. Defaults: 10 000 entries, 7 days. */
  deadLetter?: { maxLen?: number; maxAgeMs?: number }
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
}

export interface BulkOptions extends Omit<JobOptions, 'jobId'> {
  /** One per item (undefined where an item has none). */
  jobIds?: ReadonlyArray<string | undefined>
}

export interface DeadJob<T> {
  id: string
  data: T
  error: string
  attempts: number
  failedAt: Date
}

export interface DeadLetters<T> {
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
  /** Lease length in ms, renewed by Rust timers while the handler runs. Default 30000. */
  visibilityTimeoutMs?: number
  /** Handler runs per job (the first included) before it goes to dead. Default 3. */
  maxAttempts?: number
  /** Deliveries of one entry (worker crashes, expired leases) before it goes to dead. Default 5. */
  maxDeliveries?: number
  /** How long one blocking read waits for new jobs, in ms; also bounds how long close() waits for it. Default 1000. */
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

export interface Job<T> {
  /** The jobId given to add, else the id add returned. Stable across attempts. */
  readonly id: string
  readonly data: T
  /** 1-based. */
  readonly attempt: number
  /** Attempts this job gets in all (its own maxAttempts, else the worker's). */
  readonly maxAttempts: number
  /** Aborted when the handler times out (handlerTimeoutMs). */
  readonly signal: AbortSignal
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
}

/** Every error holdfast creates carries a stable `code` (`ERR_HOLDFAST_...`). */
export declare class HoldfastError extends Error {
  readonly code: string
}

export declare class Worker<T = unknown> extends EventEmitter {
  /** Unique per process run; the consumer name in Redis. */
  readonly id: string
  on(event: 'completed', listener: (job: Job<T>, result: unknown) => void): this
  on(event: 'failed', listener: (job: Job<T>, error: Error, willRetry: boolean) => void): this
  on(event: 'retrying', listener: (job: Job<T>, error: Error, delayMs: number) => void): this
  on(event: 'stalled', listener: (jobId: string) => void): this
  on(event: 'dead', listener: (jobId: string, reason: string) => void): this
  on(event: 'error', listener: (error: HoldfastError) => void): this
  once(event: 'completed', listener: (job: Job<T>, result: unknown) => void): this
  once(event: 'failed', listener: (job: Job<T>, error: Error, willRetry: boolean) => void): this
  once(event: 'retrying', listener: (job: Job<T>, error: Error, delayMs: number) => void): this
  once(event: 'stalled', listener: (jobId: string) => void): this
  once(event: 'dead', listener: (jobId: string, reason: string) => void): this
  once(event: 'error', listener: (error: HoldfastError) => void): this
  /** Stop fetching, wait for jobs in flight, flush acks, remove the heartbeat. */
  close(): Promise<void>
}

export declare class ReliableQueue<T = unknown> {
  constructor(name: string, options?: QueueOptions)
  readonly name: string
  add(data: T, options?: JobOptions): Promise<string>
  addBulk(items: readonly T[], options?: BulkOptions): Promise<string[]>
  /** Stops fetching in every worker of this queue, in every process; in-flight jobs finish. */
  pause(): Promise<void>
  resume(): Promise<void>
  readonly dead: DeadLetters<T>
  process(handler: (job: Job<T>) => unknown, options?: ProcessOptions): Worker<T>
  stats(): Promise<QueueStats>
  /** Closes this queue's workers gracefully, then the queue. */
  close(): Promise<void>
}
