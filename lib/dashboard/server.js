'use strict'
// The dashboard's HTTP server: a small JSON API over a `source` (queue stats and dead-letter
// operations, supplied by the caller) plus one self-contained page. Node built-ins only.

const http = require('node:http')
const fs = require('node:fs')
const path = require('node:path')
const crypto = require('node:crypto')

const MAX_BODY_BYTES = 1024 * 1024
const MAX_DEAD_LIMIT = 500
const DEFAULT_DEAD_LIMIT = 50
// The table's rates span about a minute; history points a few samples, because the totals are
// flushed about a second late and a single interval would jitter.
const RATE_WINDOW_MS = 60_000
const POINT_WINDOW_MS = 6_000
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]'])
const JSON_TYPE = 'application/json; charset=utf-8'
const STATUS_BY_CODE = {
  ERR_HOLDFAST_CONNECTION: 503,
  ERR_HOLDFAST_UNKNOWN_QUEUE: 404,
  ERR_HOLDFAST_INVALID_ARGUMENT: 400,
}

class HttpError extends Error {
  constructor(status, code, message, headers) {
    super(message)
    this.status = status
    this.code = code
    this.headers = headers
  }
}

const badInput = (message) => new HttpError(400, 'ERR_HOLDFAST_INVALID_ARGUMENT', message)
const forbidden = (message) => new HttpError(403, 'ERR_HOLDFAST_FORBIDDEN', message)
const notFound = () => new HttpError(404, 'ERR_HOLDFAST_NOT_FOUND', 'no such route')
const unknownQueue = (name) => new HttpError(404, 'ERR_HOLDFAST_UNKNOWN_QUEUE', `no queue named ${JSON.stringify(name)}`)
const sha256 = (text) => crypto.createHash('sha256').update(text).digest()

/** The page, and a CSP that allows exactly its inline <script> and <style> blocks by hash. */
function loadPage() {
  const html = fs.readFileSync(path.join(__dirname, 'page.html'), 'utf8')
  const hashes = (tag) =>
    [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))]
      .map((m) => `'sha256-${sha256(m[1]).toString('base64')}'`)
      .join(' ') || "'none'"
  const csp = [
    "default-src 'none'",
    `script-src ${hashes('script')}`,
    `style-src ${hashes('style')}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ')
  return { body: Buffer.from(html), csp }
}

/** Keeps each queue's completed/failed totals and waiting count, sampled every sampleMs. */
function createSampler(source, sampleMs, historyMs) {
  const series = new Map() // name -> [{ t, completed, failed, waiting }], oldest first
  const keepMs = Math.max(historyMs, RATE_WINDOW_MS) + 2 * sampleMs
  let generation = 0
  let timer = null

  async function tick() {
    let queues
    try {
      queues = await source.queues()
    } catch {
      return // the API requests report source errors; the sampler just tries again
    }
    const t = Date.now()
    const seen = new Set()
    for (const q of Array.isArray(queues) ? queues : []) {
      const name = String(q.name)
      seen.add(name)
      let samples = series.get(name)
      if (!samples) series.set(name, (samples = []))
      samples.push({ t, completed: num(q.completed), failed: num(q.failed), waiting: num(q.waiting) })
      while (samples.length && samples[0].t < t - keepMs) samples.shift()
    }
    for (const name of series.keys()) if (!seen.has(name)) series.delete(name)
  }

  function start() {
    if (timer) return
    const gen = ++generation
    const loop = async () => {
      await tick()
      if (gen !== generation) return
      // Chained rather than setInterval so a slow Redis never stacks up overlapping samples.
      timer = setTimeout(loop, sampleMs)
      timer.unref()
    }
    timer = setTimeout(loop, 0)
    timer.unref()
  }

  function stop() {
    generation++
    clearTimeout(timer)
    timer = null
  }

  /** Rates over the last ~minute of samples, or nulls until two samples exist. */
  function rates(name) {
    const samples = series.get(name) || []
    const r = rateAt(samples, samples.length - 1, Math.max(RATE_WINDOW_MS, 1.5 * sampleMs))
    return r || { completed: null, failed: null }
  }

  function history(name) {
    const samples = series.get(name)
    if (!samples) return null
    const windowMs = Math.max(POINT_WINDOW_MS, 1.5 * sampleMs)
    const since = Date.now() - historyMs
    const points = []
    samples.forEach((s, i) => {
      if (s.t < since) return
      const r = rateAt(samples, i, windowMs)
      points.push({
        t: s.t,
        completedPerSecond: r ? r.completed : null,
        failedPerSecond: r ? r.failed : null,
        waiting: s.waiting,
      })
    })
    return points
  }

  return { start, stop, rates, history }
}

function num(value) {
  const n = Number(value)
  return Number.isFinite(n) ? n : 0
}

/** Per-second rates from the earliest sample within windowMs before samples[end] to it. */
function rateAt(samples, end, windowMs) {
  const last = samples[end]
  if (!last) return null
  let i = end
  while (i > 0 && samples[i - 1].t >= last.t - windowMs) i--
  if (i === end) return null
  const first = samples[i]
  const seconds = (last.t - first.t) / 1000
  if (!(seconds > 0)) return null
  // Totals only grow; a drop (keys reset) counts as zero rather than a negative rate.
  const per = (a, b) => Math.round((Math.max(0, b - a) / seconds) * 1000) / 1000
  return { completed: per(first.completed, last.completed), failed: per(first.failed, last.failed) }
}

function queueJson(q, rates) {
  return {
    name: String(q.name),
    mode: q.mode,
    waiting: q.waiting,
    active: q.active,
    delayed: q.delayed,
    dead: q.dead,
    workers: q.workers,
    paused: Boolean(q.paused),
    oldestWaitingSeconds: q.oldestWaitingSeconds ?? null,
    completed: q.completed,
    failed: q.failed,
    completedPerSecond: rates.completed,
    failedPerSecond: rates.failed,
  }
}

function deadJson(d) {
  const failedAt = d.failedAt instanceof Date ? d.failedAt : new Date(d.failedAt)
  return {
    id: String(d.id),
    data: Buffer.isBuffer(d.data) ? { type: 'Buffer', base64: d.data.toString('base64') } : d.data,
    error: d.error ?? null,
    attempts: d.attempts,
    failedAt: Number.isNaN(failedAt.getTime()) ? null : failedAt.toISOString(),
  }
}

/** A query parameter as an integer >= min, or the fallback when absent. */
function intParam(query, key, fallback, min) {
  const raw = query.get(key)
  if (raw === null) return fallback
  const n = /^\d{1,15}$/.test(raw) ? Number(raw) : NaN
  if (!(n >= min)) throw badInput(`${key} must be an integer >= ${min}, got ${JSON.stringify(raw)}`)
  return n
}

/** The host name of a Host header: `[::1]:8080` -> `[::1]`, `LocalHost:1` -> `localhost`. */
function hostName(host) {
  const h = String(host || '').toLowerCase()
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1)
  const colon = h.indexOf(':')
  return colon < 0 ? h : h.slice(0, colon)
}

/**
 * No Origin (same-origin GET-style or non-browser client) passes; otherwise it must name the
 * Host, or the X-Forwarded-Host a reverse proxy set (a page on another origin can't add that
 * header without a CORS preflight, which this server never grants).
 */
function sameOrigin(req) {
  const origin = req.headers.origin
  if (origin === undefined) return true
  let host
  try {
    host = new URL(origin).host
  } catch {
    return false
  }
  const forwarded = String(req.headers['x-forwarded-host'] || '').split(',')[0].trim()
  return [req.headers.host, forwarded].some((h) => h && h.toLowerCase() === host)
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const tooLarge = () =>
      new HttpError(413, 'ERR_HOLDFAST_PAYLOAD_TOO_LARGE', `request body over ${MAX_BODY_BYTES} bytes`, {
        Connection: 'close',
      })
    if (Number(req.headers['content-length']) > MAX_BODY_BYTES) return reject(tooLarge())
    const chunks = []
    let size = 0
    req.on('data', (chunk) => {
      size += chunk.length
      if (size <= MAX_BODY_BYTES) return void chunks.push(chunk)
      chunks.length = 0
      reject(tooLarge())
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

async function jsonBody(req) {
  const text = await readBody(req)
  if (text.trim() === '') return {}
  try {
    return JSON.parse(text)
  } catch {
    throw badInput('request body is not valid JSON')
  }
}

function retryIds(body) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badInput('body must be a JSON object')
  if (body.all === true && body.ids === undefined) return 'all'
  const ids = body.ids
  if (body.all === undefined && Array.isArray(ids) && ids.length > 0 && ids.every((id) => typeof id === 'string')) {
    return ids
  }
  throw badInput('body must be { "ids": [non-empty list of strings] } or { "all": true }')
}

/**
 * An http.Server (not yet listening) for the dashboard. Sampling for rates and history starts
 * when it listens and stops on 'close'; its timers are unref'd.
 */
function createDashboardServer({ source, token, sampleMs = 2000, historyMs = 10 * 60_000 } = {}) {
  if (!source || typeof source.queues !== 'function') throw new TypeError('createDashboardServer needs a source')
  const page = loadPage()
  const tokenDigest = token ? sha256(String(token)) : null
  const sampler = createSampler(source, sampleMs, historyMs)

  async function findQueue(name) {
    const q = (await source.queues()).find((q) => String(q.name) === name)
    if (!q) throw unknownQueue(name)
    return q
  }

  // Under /api/queues/:name, by what follows the name.
  const queueRoutes = {
    '': ['GET', async (name) => queueJson(await findQueue(name), sampler.rates(name))],
    history: [
      'GET',
      async (name) => {
        let points = sampler.history(name)
        if (!points) {
          await findQueue(name) // not sampled yet: an empty history if it exists, else 404
          points = []
        }
        return { points }
      },
    ],
    dead: [
      'GET',
      async (name, query) => {
        const offset = intParam(query, 'offset', 0, 0)
        const limit = Math.min(intParam(query, 'limit', DEFAULT_DEAD_LIMIT, 1), MAX_DEAD_LIMIT)
        const dead = await source.dead(name, { offset, limit })
        return dead.map(deadJson)
      },
    ],
    'dead/retry': ['POST', async (name, query, req) => ({ moved: await source.retry(name, retryIds(await jsonBody(req))) })],
    'dead/purge': ['POST', async (name) => ({ purged: await source.purge(name) })],
    pause: ['POST', async (name) => (await source.pause(name), { paused: true })],
    resume: ['POST', async (name) => (await source.resume(name), { paused: false })],
  }

  async function listQueues() {
    const queues = (await source.queues()).map((q) => queueJson(q, sampler.rates(String(q.name))))
    return queues.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  function authorized(req) {
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization || '')
    // Digests make the buffers equal-length, so the comparison leaks neither content nor length.
    return Boolean(m) && crypto.timingSafeEqual(sha256(m[1]), tokenDigest)
  }

  async function route(req, res) {
    const url = req.url || '/'
    const q = url.indexOf('?')
    const pathname = q < 0 ? url : url.slice(0, q)
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1))
    const method = req.method === 'HEAD' ? 'GET' : req.method
    const allow = (m) => {
      if (method !== m) throw new HttpError(405, 'ERR_HOLDFAST_METHOD_NOT_ALLOWED', `use ${m}`, { Allow: m === 'GET' ? 'GET, HEAD' : m })
    }

    if (pathname === '/healthz') {
      allow('GET')
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' })
      return res.end('ok')
    }
    // Without a token only loopback is served; a foreign Host means DNS rebinding.
    if (!tokenDigest && !LOCAL_HOSTS.has(hostName(req.headers.host))) {
      throw forbidden('Host must be localhost, 127.0.0.1 or [::1] when no token is set')
    }
    if (pathname === '/' || pathname === '/index.html') {
      allow('GET')
      res.writeHead(200, {
        'Content-Type': 'text/html; charset=utf-8',
        'Cache-Control': 'no-store',
        'Content-Security-Policy': page.csp,
      })
      return res.end(page.body)
    }
    if (!pathname.startsWith('/api/')) throw notFound()
    if (tokenDigest && !authorized(req)) {
      const message = req.headers.authorization ? 'wrong token' : 'token required'
      throw new HttpError(401, 'ERR_HOLDFAST_UNAUTHORIZED', message, { 'WWW-Authenticate': 'Bearer' })
    }

    const segments = pathname.slice('/api/'.length).split('/')
    if (segments[0] !== 'queues') throw notFound()
    let handler
    let name
    if (segments.length === 1) {
      allow('GET')
      handler = listQueues
    } else {
      const entry = queueRoutes[segments.slice(2).join('/')]
      if (!entry) throw notFound()
      allow(entry[0])
      try {
        name = decodeURIComponent(segments[1])
      } catch {
        throw badInput('queue name is not valid URL encoding')
      }
      handler = entry[1]
    }
    if (method === 'POST') {
      if (!sameOrigin(req)) throw forbidden('cross-origin request refused')
      const type = String(req.headers['content-type'] || '').split(';')[0].trim().toLowerCase()
      if (type !== 'application/json') throw forbidden('POST requests must have Content-Type: application/json')
    }
    sendJson(res, 200, await handler(name, query, req))
  }

  const server = http.createServer((req, res) => {
    res.setHeader('X-Content-Type-Options', 'nosniff')
    res.setHeader('Referrer-Policy', 'no-referrer')
    route(req, res).catch((err) => {
      const known = err instanceof HttpError
      const code = known ? err.code : typeof err?.code === 'string' ? err.code : 'ERR_HOLDFAST_INTERNAL'
      const status = known ? err.status : STATUS_BY_CODE[code] || 500
      const message = err instanceof Error ? err.message : String(err)
      if (res.headersSent) return void res.destroy()
      sendJson(res, status, { error: { code, message } }, known ? err.headers : undefined)
    })
  })
  server.on('listening', sampler.start)
  server.on('close', sampler.stop)
  return server
}

function sendJson(res, status, value, headers) {
  // BigInt totals would make JSON.stringify throw; these counts fit a double.
  const body = JSON.stringify(value, (key, v) => (typeof v === 'bigint' ? Number(v) : v))
  res.writeHead(status, {
    'Content-Type': JSON_TYPE,
    'Cache-Control': 'no-store',
    'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
    ...headers,
  })
  res.end(body)
}

module.exports = { createDashboardServer }
