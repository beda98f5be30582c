'use strict'
// Retry backoff: validation, the compact spec that travels with a job (per-job backoff), and
// the delay for an attempt. Spec: "<f|e>:<delayMs>:<maxDelayMs or 0>:<jitter 0..1>".

const { invalidArgument: invalid } = require('./errors.js')
const { checkOptions } = require('./options.js')

const TYPES = { fixed: 'f', exponential: 'e' }

/** Checks a backoff option; returns it (a function, or a normalized object) or undefined. */
function checkBackoff(backoff, { allowFunction }) {
  if (backoff === undefined) return undefined
  if (typeof backoff === 'function') {
    if (!allowFunction) throw invalid('a per-job backoff must be an object ({ type, delayMs, ... }); functions are only for process() options')
    return backoff
  }
  if (backoff === null || typeof backoff !== 'object') throw invalid("backoff must be { type: 'fixed' | 'exponential', delayMs, maxDelayMs?, jitter? } or a function (attempt, error) => ms")
  const { type, delayMs, maxDelayMs = 0, jitter = 0 } = checkOptions('backoff', backoff)
  if (!(type in TYPES)) throw invalid(`backoff.type must be 'fixed' or 'exponential', got ${JSON.stringify(type)}`)
  for (const [name, v] of [['delayMs', delayMs], ['maxDelayMs', maxDelayMs]]) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw invalid(`backoff.${name} must be a number of ms >= 0`)
  }
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1)) throw invalid('backoff.jitter must be a number from 0 to 1')
  return { type, delayMs, maxDelayMs, jitter }
}

function toSpec(b) {
  return `${TYPES[b.type]}:${Math.round(b.delayMs)}:${Math.round(b.maxDelayMs)}:${b.jitter}`
}

function fromSpec(spec) {
  const [t, delayMs, maxDelayMs, jitter] = spec.split(':')
  return { type: t === 'e' ? 'exponential' : 'fixed', delayMs: Number(delayMs) || 0, maxDelayMs: Number(maxDelayMs) || 0, jitter: Number(jitter) || 0 }
}

/** Longest delay holdfast schedules (the native side takes a u32 of ms): ~24 days. */
const MAX_DELAY_MS = 2 ** 31 - 1

/**
 * The delay before the attempt after `attempt` (1-based) failed with `error`. A function
 * backoff that throws or returns a non-number falls back to no delay and reports why.
 */
function delayFor(backoff, attempt, error, report) {
  if (backoff === undefined) return 0
  let ms
  if (typeof backoff === 'function') {
    try {
      ms = backoff(attempt, error)
    } catch (err) {
      report(err)
      return 0
    }
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
      report(invalid(`the backoff function returned ${typeof ms === 'number' ? ms : `a ${typeof ms}`}; it must return a number of ms >= 0`))
      return 0
    }
  } else {
    ms = backoff.type === 'exponential' ? backoff.delayMs * 2 ** (attempt - 1) : backoff.delayMs
    if (backoff.maxDelayMs > 0) ms = Math.min(ms, backoff.maxDelayMs)
    if (backoff.jitter > 0) ms *= 1 - backoff.jitter * Math.random()
  }
  return Math.min(Math.round(ms), MAX_DELAY_MS)
}

module.exports = { checkBackoff, toSpec, fromSpec, delayFor }
