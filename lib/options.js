'use strict'
// Option objects: each API takes a known set of keys, and a key outside it is an error with a
// hint, so a BullMQ habit (`delay`, `attempts`) or a typo does not silently do nothing.

const { invalidArgument } = require('./errors.js')

const KEYS = {
  'queue options': ['url', 'tls', 'sentinel', 'cluster', 'durable', 'mode', 'listKey', 'streamKey', 'group', 'groupStart', 'prefix', 'maxPayloadBytes', 'dedupWindowMs', 'deadLetter', 'keepOutcomeMs'],
  durable: ['replicas', 'fsync', 'timeoutMs'],
  sentinel: ['masterName', 'nodes'],
  tls: ['ca', 'cert', 'key', 'servername', 'rejectUnauthorized'],
  deadLetter: ['maxLen', 'maxAgeMs'],
  'add options': ['jobId', 'maxAttempts', 'backoff', 'delayMs', 'runAt', 'keepOutcomeMs'],
  'addBulk options': ['jobIds', 'maxAttempts', 'backoff', 'delayMs', 'runAt', 'keepOutcomeMs'],
  'waitFor options': ['timeoutMs'],
  'process options': ['concurrency', 'visibilityTimeoutMs', 'maxAttempts', 'maxDeliveries', 'blockMs', 'prefetch', 'backoff', 'handlerTimeoutMs'],
  backoff: ['type', 'delayMs', 'maxDelayMs', 'jitter'],
  'dead.list options': ['limit', 'offset'],
  'peek options': ['limit'],
  'close options': ['timeoutMs'],
}

/** Other queues' names (BullMQ's mostly) for what holdfast has under another name. */
const RENAMED = {
  delay: 'delayMs',
  attempts: 'maxAttempts',
  maxRetries: 'maxAttempts',
  retries: 'maxAttempts',
  id: 'jobId',
  jobId: 'jobIds',
  lockDuration: 'visibilityTimeoutMs',
  visibilityTimeout: 'visibilityTimeoutMs',
  maxStalledCount: 'maxDeliveries',
  timeout: 'handlerTimeoutMs',
  connection: 'url',
  redis: 'url',
  maxDelay: 'maxDelayMs',
  count: 'maxLen',
}

/** What holdfast does not have, and what to do instead. */
const MISSING = {
  priority: 'job priorities are not supported yet: use a second queue for urgent jobs',
  repeat: 'repeatable (cron) jobs are not supported yet',
  limiter: 'rate limiting is not supported yet',
  removeOnComplete: 'finished jobs are removed; keepOutcomeMs keeps their outcome (result or error) for waitFor and getJob, and failed ones go to the dead letters (queue option deadLetter)',
  removeOnFail: 'failed jobs go to the dead letters, capped by the queue option deadLetter: { maxLen, maxAgeMs }',
  lifo: 'jobs are taken oldest first; LIFO is not supported',
  passphrase: 'encrypted private keys are not supported: decrypt the key first (openssl pkey -in key.pem -out plain.pem)',
  stalledInterval: 'expired leases are recovered on their own schedule, derived from visibilityTimeoutMs',
}

function distance(a, b) {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = cur
    }
  }
  return row[b.length]
}

function hint(key, known) {
  if (known.includes(RENAMED[key])) return `; did you mean '${RENAMED[key]}'?`
  if (MISSING[key]) return ` (${MISSING[key]})`
  const lower = key.toLowerCase()
  let best = null
  for (const k of known) {
    const d = distance(lower, k.toLowerCase())
    if (d <= Math.max(1, Math.floor(k.length / 4)) && (best === null || d < best.d)) best = { k, d }
  }
  return best ? `; did you mean '${best.k}'?` : ''
}

/**
 * Checks that `value` is an options object (or undefined) with only the keys of `what`; returns
 * it, or {} for undefined.
 */
function checkOptions(what, value) {
  if (value === undefined) return {}
  if (value === null || typeof value !== 'object') throw invalidArgument(`${what} must be an object`)
  const known = KEYS[what]
  for (const key in value) {
    if (!known.includes(key)) {
      throw invalidArgument(`unknown ${what} key '${key}'${hint(key, known)} (known: ${known.join(', ')})`)
    }
  }
  return value
}

module.exports = { checkOptions }
