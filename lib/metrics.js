'use strict'
// Prometheus text exposition (format 0.0.4) of queues: gauges read from Redis (every process)
// and counters of this process's workers (kept in Rust, metrics.rs). One family is written
// once with every queue's samples under it, as the format requires.

const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

const STATES = ['waiting', 'active', 'delayed', 'dead']

/** Label values escaped as the format says: backslash, double quote, newline. */
function label(value) {
  return String(value).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

function number(n) {
  if (n === Infinity) return '+Inf'
  if (n === -Infinity) return '-Inf'
  return Number.isNaN(n) ? 'NaN' : String(n)
}

/**
 * The families, in output order: [name, type, help, samples(sample) -> [suffix, labels, value][]].
 * `sample` is `{ name, labels, stats, counters }`; `stats` is null when Redis did not answer.
 */
const FAMILIES = [
  ['holdfast_redis_up', 'gauge', "1 when the queue's Redis answered this scrape, else 0 (and the queue gauges are left out).", (s) => [['', {}, s.stats ? 1 : 0]]],
  [
    'holdfast_queue_jobs',
    'gauge',
    'Jobs in the queue by state, across every process (waiting: not yet delivered; active: delivered, not finished).',
    (s) => (s.stats ? STATES.map((state) => ['', { state }, s.stats[state]]) : []),
  ],
  [
    'holdfast_queue_oldest_waiting_seconds',
    'gauge',
    'How long the next job to be delivered has waited; 0 when none waits; absent when it cannot be dated (list mode: a jobId of your own).',
    (s) => {
      if (!s.stats) return []
      if (s.stats.waiting === 0) return [['', {}, 0]]
      return s.stats.oldestWaitingMs == null ? [] : [['', {}, s.stats.oldestWaitingMs / 1000]]
    },
  ],
  [
    'holdfast_stream_group_jobs',
    'gauge',
    "Stream mode: each consumer group's jobs (waiting: not yet delivered to that group, its lag; active: delivered to it, not finished); each series once however many of the groups' queues are sampled.",
    (s) =>
      s.stats
        ? s.stats.groups.flatMap((g) => [
            ...(g.waiting === null ? [] : [['', { group: g.name, state: 'waiting' }, g.waiting]]),
            ['', { group: g.name, state: 'active' }, g.active],
          ])
        : [],
  ],
  ['holdfast_queue_paused', 'gauge', '1 while the queue is paused.', (s) => (s.stats ? [['', {}, s.stats.paused ? 1 : 0]] : [])],
  ['holdfast_workers', 'gauge', 'Live workers of the queue, in every process (heartbeat not overdue).', (s) => (s.stats ? [['', {}, s.stats.workers]] : [])],
  ['holdfast_jobs_completed_total', 'counter', "Jobs this process's workers completed.", (s) => [['', {}, s.counters.completed]]],
  ['holdfast_jobs_failed_total', 'counter', "Handler failures in this process's workers (retried or dead-lettered).", (s) => [['', {}, s.counters.failed]]],
  ['holdfast_jobs_retried_total', 'counter', "Failed jobs this process's workers scheduled for another attempt.", (s) => [['', {}, s.counters.retried]]],
  [
    'holdfast_jobs_dead_total',
    'counter',
    "Jobs this process's workers moved to the dead letters (attempts used up, or delivered maxDeliveries times without finishing).",
    (s) => [['', {}, s.counters.dead]],
  ],
  ['holdfast_jobs_stalled_total', 'counter', "Jobs this process's workers recovered from workers that died or lost their lease.", (s) => [['', {}, s.counters.stalled]]],
  [
    'holdfast_job_duration_seconds',
    'histogram',
    "Time from handing a job to a handler to its outcome, in this process's workers.",
    ({ counters: c }) => [
      ...c.durationBounds.map((le, i) => ['_bucket', { le: number(le) }, c.durationBuckets[i]]),
      ['_bucket', { le: '+Inf' }, c.durationBuckets[c.durationBuckets.length - 1]],
      ['_sum', {}, c.durationSumSeconds],
      ['_count', {}, c.durationBuckets[c.durationBuckets.length - 1]],
    ],
  ],
]

/** Text for the given samples, every family once. */
function render(samples) {
  const lines = []
  for (const [name, type, help, of] of FAMILIES) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    const seen = new Set() // fanned-out queues all report every group of their stream
    for (const sample of samples) {
      for (const [suffix, labels, value] of of(sample)) {
        const pairs = Object.entries({ queue: sample.name, ...sample.labels, ...labels }).map(([k, v]) => `${k}="${label(v)}"`)
        const series = `${name}${suffix}{${pairs.join(',')}}`
        if (seen.has(series)) continue
        seen.add(series)
        lines.push(`${series} ${number(value)}`)
      }
    }
  }
  return `${lines.join('\n')}\n`
}

/** A queue's sample: Redis counts (null if Redis did not answer) and this process's counters. */
async function sample(queue) {
  const stats = await queue.stats().catch(() => null)
  // Queues fanned out from one stream share its name: their consumer group tells them apart.
  const labels = queue._group === undefined ? {} : { group: queue._group }
  return { name: queue.name, labels, stats, counters: queue._native.counters() }
}

module.exports = { CONTENT_TYPE, render, sample }
