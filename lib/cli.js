'use strict'
// The `holdfast` command: look at queues, move dead letters, pause, watch, serve the dashboard.
// `main(argv, io)` returns the exit code, so tests can run it in-process or by spawning bin/.
//
// Exit codes: 0 done; 1 Redis or the network failed (or an unexpected error); 2 bad usage;
// 3 no such queue, or ids not found among the dead letters.

const fs = require('node:fs')
const { parseArgs } = require('node:util')
const { ReliableQueue, listQueues, metrics } = require('./holdfast.js')

const EXIT = { OK: 0, FAILED: 1, USAGE: 2, NOT_FOUND: 3 }

const CONNECTION_FLAGS = {
  url: { type: 'string' },
  prefix: { type: 'string' },
  mode: { type: 'string' },
  'list-key': { type: 'string' },
  'stream-key': { type: 'string' },
  group: { type: 'string' },
  cluster: { type: 'string' },
  'sentinel-master': { type: 'string' },
  sentinel: { type: 'string' },
  tls: { type: 'boolean' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-servername': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
}

const CONNECTION_HELP = `Connection (every command):
  --url URL               redis[s]://[user:password@]host:port[/db] (default: $REDIS_URL, else
                          redis://127.0.0.1:6379)
  --prefix P              key prefix of the queues (default: holdfast)
  --mode stream|list      the queue's mode (default: what its keys in Redis say)
  --list-key KEY          list mode: the list producers push to, when not the default
  --stream-key KEY        stream mode: the stream producers add to, when not the default
  --group NAME            stream mode: the consumer group (fan-out) whose dead letters, pause
                          flag and totals to use (default workers)
  --cluster H:P,H:P       Redis Cluster seed nodes
  --sentinel H:P,H:P      Sentinel nodes, with --sentinel-master NAME
  --tls                   TLS (also implied by a rediss:// url)
  --tls-ca FILE, --tls-cert FILE, --tls-key FILE, --tls-servername NAME
  --json                  machine-readable output
  -h, --help              this help`

const COMMANDS = {
  queues: {
    usage: 'holdfast queues',
    about: 'The queues under the prefix, with their counts (SCANs the keyspace).',
    run: cmdQueues,
  },
  stats: { usage: 'holdfast stats <queue>', about: "A queue's counts, oldest waiting job, and finished-job totals.", run: cmdStats },
  peek: {
    usage: 'holdfast peek <queue> [--limit N]',
    about: 'The next jobs workers will be given, oldest first (takes nothing). --limit: 10.',
    flags: { limit: { type: 'string' } },
    run: cmdPeek,
  },
  job: {
    usage: 'holdfast job <queue> <id>',
    about: 'Where a job is (waiting, active, delayed, completed, dead, unknown), with its data or outcome.',
    run: cmdJob,
  },
  dead: {
    usage: 'holdfast dead list <queue> [--limit N] [--offset N]\n  holdfast dead retry <queue> <id>... | --all\n  holdfast dead purge <queue> --yes',
    about: 'List the dead letters (newest first), move them back to the queue, or delete them all.',
    flags: { limit: { type: 'string' }, offset: { type: 'string' }, all: { type: 'boolean' }, yes: { type: 'boolean' } },
    run: cmdDead,
  },
  pause: { usage: 'holdfast pause <queue>', about: 'Stop every worker of the queue from taking new jobs.', run: (c) => cmdPause(c, true) },
  resume: { usage: 'holdfast resume <queue>', about: 'Let the workers take jobs again.', run: (c) => cmdPause(c, false) },
  watch: {
    usage: 'holdfast watch <queue> [--interval S] [--count N]',
    about: 'Live counts and rates, refreshed every --interval seconds (1); --count stops after N.',
    flags: { interval: { type: 'string' }, count: { type: 'string' } },
    run: cmdWatch,
  },
  metrics: { usage: 'holdfast metrics <queue>...', about: "Prometheus text for queues (their counts in Redis; this process runs no worker).", run: cmdMetrics },
  dashboard: {
    usage: 'holdfast dashboard [--port N] [--host H] [--token T]',
    about: 'Serve the web dashboard (default http://127.0.0.1:8722).',
    more: 'Binding to any other host needs --token (or $HOLDFAST_DASHBOARD_TOKEN), which the page and\nthe API then require.',
    flags: { port: { type: 'string' }, host: { type: 'string' }, token: { type: 'string' } },
    run: cmdDashboard,
  },
}

class UsageError extends Error {}
class NotFound extends Error {}

function mainHelp() {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length))
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.about}`)
  return `holdfast: look at and operate holdfast queues on Redis.

Usage: holdfast <command> [options]

Commands:
${lines.join('\n')}

'holdfast <command> --help' tells more.

${CONNECTION_HELP}

Exit codes: 0 done, 1 Redis unreachable or another failure, 2 bad usage, 3 no such queue or id.`
}

function commandHelp(name) {
  const c = COMMANDS[name]
  return `Usage: ${c.usage}\n\n${c.about}${c.more ? `\n${c.more}` : ''}\n\n${CONNECTION_HELP}`
}

/** Runs the command line `argv` (without node and the script). Resolves to the exit code. */
async function main(argv, io = { stdout: process.stdout, stderr: process.stderr }) {
  const out = (text) => io.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    out(mainHelp())
    return name === undefined ? EXIT.USAGE : EXIT.OK
  }
  if (name === '--version' || name === '-v') {
    out(require('../package.json').version)
    return EXIT.OK
  }
  const command = COMMANDS[name]
  let ctx
  try {
    if (!command) throw new UsageError(`unknown command '${name}'; commands: ${Object.keys(COMMANDS).join(', ')}`)
    const { values, positionals } = parseArgs({
      args: rest,
      options: { ...CONNECTION_FLAGS, ...command.flags },
      allowPositionals: true,
      strict: true,
    })
    if (values.help) {
      out(commandHelp(name))
      return EXIT.OK
    }
    ctx = { flags: values, args: positionals, out, io, connection: connectionOptions(values), opened: [] }
    return (await command.run(ctx)) ?? EXIT.OK
  } catch (e) {
    const err = (text) => io.stderr.write(`holdfast: ${text}\n`)
    if (e instanceof UsageError || (e && typeof e.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS'))) {
      err(`${e.message}\n${command ? `usage: ${command.usage}` : "run 'holdfast --help'"}`)
      return EXIT.USAGE
    }
    if (e instanceof NotFound) {
      err(e.message)
      return EXIT.NOT_FOUND
    }
    if (e && e.code === 'ERR_HOLDFAST_INVALID_ARGUMENT') {
      err(`${e.message}`)
      return EXIT.USAGE
    }
    err(e && e.code ? `${e.message} (${e.code})` : `unexpected error: ${e && e.stack ? e.stack : e}`)
    return EXIT.FAILED
  } finally {
    if (ctx) await Promise.all(ctx.opened.map((q) => q.close({ timeoutMs: 0 }).catch(() => {})))
  }
}

function list(value) {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
}

function readFile(flag, file) {
  try {
    return fs.readFileSync(file)
  } catch (e) {
    throw new UsageError(`--${flag}: cannot read ${file}: ${e.message}`)
  }
}

/** The mode the flags give or imply (--list-key is list mode's, --stream-key and --group stream's). */
function flagMode(f) {
  if (f.mode !== undefined) return f.mode
  if (f['list-key'] !== undefined) return 'list'
  if (f['stream-key'] !== undefined || f.group !== undefined) return 'stream'
  return undefined
}

/** Queue options from the flags, without a mode (that is found per queue unless given). */
function connectionOptions(f) {
  const o = {}
  if (f.url !== undefined) o.url = f.url
  if (f.prefix !== undefined) o.prefix = f.prefix
  if (f['list-key'] !== undefined) o.listKey = f['list-key']
  if (f['stream-key'] !== undefined) o.streamKey = f['stream-key']
  if (f.group !== undefined) o.group = f.group
  if (f.mode !== undefined && f.mode !== 'stream' && f.mode !== 'list') throw new UsageError(`--mode must be stream or list, got '${f.mode}'`)
  if (f.cluster !== undefined) o.cluster = list(f.cluster)
  if ((f.sentinel === undefined) !== (f['sentinel-master'] === undefined)) throw new UsageError('--sentinel and --sentinel-master go together')
  if (f.sentinel !== undefined) o.sentinel = { masterName: f['sentinel-master'], nodes: list(f.sentinel) }
  const tls = {}
  if (f['tls-ca'] !== undefined) tls.ca = readFile('tls-ca', f['tls-ca'])
  if (f['tls-cert'] !== undefined) tls.cert = readFile('tls-cert', f['tls-cert'])
  if (f['tls-key'] !== undefined) tls.key = readFile('tls-key', f['tls-key'])
  if (f['tls-servername'] !== undefined) tls.servername = f['tls-servername']
  if (f.tls || Object.keys(tls).length > 0) o.tls = tls
  return o
}

function positiveInt(flag, value, fallback, { min = 0, max = 1_000_000 } = {}) {
  if (value === undefined) return fallback
  const n = /^\d+$/.test(value) ? Number(value) : NaN
  if (!(n >= min && n <= max)) throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}, got '${value}'`)
  return n
}

function queueName(ctx, at = 0) {
  const name = ctx.args[at]
  if (name === undefined || name === '') throw new UsageError('which queue? give its name')
  return name
}

/**
 * A queue in its mode (the --mode flag, else `mode`, else what its keys say), as
 * `{ queue, mode }`. Throws NotFound when it has no keys at all.
 */
async function openQueue(ctx, name, { mustExist = true, mode = flagMode(ctx.flags) } = {}) {
  const open = (m) => {
    const q = new ReliableQueue(name, { ...ctx.connection, ...(m ? { mode: m } : {}) })
    ctx.opened.push(q)
    return q
  }
  let queue = open(mode)
  if (mode == null) {
    mode = (await queue._call((n) => n.detectMode())) ?? 'stream'
    if (mode === 'list') queue = open(mode)
  }
  if (mustExist) {
    const s = await queue.stats()
    if (s.waiting + s.active + s.delayed + s.dead + s.workers + s.completed + s.failed === 0 && !s.paused) {
      throw new NotFound(`no queue '${name}' under prefix '${ctx.connection.prefix ?? 'holdfast'}' (it has no keys); 'holdfast queues' lists them`)
    }
  }
  return { queue, mode }
}

/** Aligned columns; numbers (and the headers above them) right-aligned. */
function table(rows, columns) {
  const cells = rows.map((r) => columns.map(([key, , fmt]) => (fmt ? fmt(r[key], r) : String(r[key] ?? ''))))
  const widths = columns.map(([, title], i) => Math.max(title.length, ...cells.map((c) => c[i].length)))
  const numeric = columns.map(([key]) => rows.length > 0 && rows.every((r) => typeof r[key] === 'number' || r[key] == null))
  const line = (values) =>
    values
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd()
  return [line(columns.map(([, title]) => title)), ...cells.map(line)].join('\n')
}

function age(ms) {
  if (ms == null) return '-'
  const s = ms / 1000
  if (s < 60) return `${s.toFixed(1)}s`
  if (s < 3600) return `${(s / 60).toFixed(1)}m`
  if (s < 86400) return `${(s / 3600).toFixed(1)}h`
  return `${(s / 86400).toFixed(1)}d`
}

function preview(data, width = 60) {
  let text
  if (Buffer.isBuffer(data)) text = `<${data.length} bytes>`
  else text = JSON.stringify(data) ?? String(data)
  text = text.replace(/[\r\n\t]/g, ' ')
  return text.length > width ? `${text.slice(0, width - 1)}…` : text
}

function jsonData(data) {
  return Buffer.isBuffer(data) ? { type: 'Buffer', base64: data.toString('base64') } : data
}

function print(ctx, json, human) {
  ctx.out(ctx.flags.json ? JSON.stringify(json, null, 2) : human())
}

const STAT_COLUMNS = [
  ['waiting', 'WAITING'],
  ['active', 'ACTIVE'],
  ['delayed', 'DELAYED'],
  ['dead', 'DEAD'],
  ['workers', 'WORKERS'],
  ['paused', 'PAUSED', (v) => (v ? 'yes' : 'no')],
  ['oldestWaitingMs', 'OLDEST', age],
]

async function cmdQueues(ctx) {
  if (ctx.args.length > 0) throw new UsageError(`queues takes no arguments, got '${ctx.args[0]}'`)
  const found = await listQueues(ctx.connection)
  const rows = []
  for (const { name, mode } of found) {
    const q = await openQueue(ctx, name, { mustExist: false, mode: flagMode(ctx.flags) ?? mode })
    rows.push({ name, mode: q.mode, ...(await q.queue.stats()) })
  }
  print(ctx, rows, () =>
    rows.length === 0
      ? `no queues under prefix '${ctx.connection.prefix ?? 'holdfast'}'`
      : table(rows, [['name', 'QUEUE'], ['mode', 'MODE'], ...STAT_COLUMNS, ['completed', 'COMPLETED'], ['failed', 'FAILED']]),
  )
}

async function cmdStats(ctx) {
  const name = queueName(ctx)
  const q = await openQueue(ctx, name)
  const s = await q.queue.stats()
  const json = { name, mode: q.mode, ...s }
  print(ctx, json, () => {
    const rows = [
      ['queue', name],
      ['mode', q.mode],
      ['waiting', s.waiting],
      ['active', s.active],
      ['delayed', s.delayed],
      ['dead', s.dead],
      ['workers', s.workers],
      ['paused', s.paused ? 'yes' : 'no'],
      ['oldest waiting', age(s.oldestWaitingMs)],
      ['completed (all time)', s.completed],
      ['failed (all time)', s.failed],
    ]
    const w = Math.max(...rows.map(([k]) => k.length))
    const text = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')
    if (s.groups.length === 0) return text
    const groups = table(s.groups, [
      ['name', 'GROUP'],
      ['consumers', 'CONSUMERS'],
      ['waiting', 'WAITING', (v) => (v === null ? '?' : String(v))],
      ['active', 'ACTIVE'],
      ['oldestWaitingMs', 'OLDEST', age],
    ])
    return `${text}\n\n${groups}`
  })
}

async function cmdPeek(ctx) {
  const name = queueName(ctx)
  const limit = positiveInt('limit', ctx.flags.limit, 10, { max: 10_000 })
  const { queue } = await openQueue(ctx, name)
  const jobs = await queue.peek({ limit })
  print(
    ctx,
    jobs.map((j) => ({ ...j, data: jsonData(j.data) })),
    () => (jobs.length === 0 ? `nothing waiting in '${name}'` : table(jobs, [['id', 'ID'], ['attempt', 'ATTEMPT'], ['data', 'DATA', (d) => preview(d)]])),
  )
}

async function cmdJob(ctx) {
  const name = queueName(ctx)
  const id = ctx.args[1]
  if (id === undefined || id === '') throw new UsageError('which job? give its id')
  const { queue } = await openQueue(ctx, name)
  const job = await queue.getJob(id)
  const json = { ...job, data: jsonData(job.data) }
  print(ctx, json, () => {
    const rows = [['id', job.id], ['state', job.state]]
    if (job.attempt !== undefined) rows.push(['attempt', job.attempt])
    if (job.runAt) rows.push(['runs at', job.runAt.toISOString()])
    if (job.failedAt) rows.push(['failed at', job.failedAt.toISOString()])
    if (job.error !== undefined) rows.push(['error', job.error])
    if ('result' in job) rows.push(['result', preview(job.result, 200)])
    if ('data' in job) rows.push(['data', preview(job.data, 200)])
    const w = Math.max(...rows.map(([k]) => k.length))
    return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')
  })
  return job.state === 'unknown' ? EXIT.NOT_FOUND : EXIT.OK
}

async function cmdDead(ctx) {
  const [action] = ctx.args
  if (!['list', 'retry', 'purge'].includes(action)) throw new UsageError(`dead takes list, retry or purge, got '${action ?? ''}'`)
  const name = queueName(ctx, 1)
  const ids = ctx.args.slice(2)
  if (action !== 'retry' && ids.length > 0) throw new UsageError(`dead ${action} takes only the queue, got '${ids[0]}'`)
  if (action === 'retry' && (ids.length > 0) === Boolean(ctx.flags.all)) throw new UsageError('dead retry takes job ids, or --all')
  if (action === 'purge' && !ctx.flags.yes) throw new UsageError(`dead purge deletes every dead letter of '${name}': add --yes`)
  const { queue: q } = await openQueue(ctx, name)
  if (action === 'list') {
    const limit = positiveInt('limit', ctx.flags.limit, 20, { max: 10_000 })
    const offset = positiveInt('offset', ctx.flags.offset, 0, { max: 0xffffffff })
    const items = await q.dead.list({ limit, offset })
    const stats = await q.stats()
    print(
      ctx,
      items.map((d) => ({ ...d, data: jsonData(d.data), failedAt: d.failedAt.toISOString() })),
      () =>
        items.length === 0
          ? `no dead letters in '${name}'${offset ? ` after ${offset}` : ''}`
          : `${table(items, [
              ['id', 'ID'],
              ['attempts', 'ATTEMPTS'],
              ['failedAt', 'FAILED AT', (d) => d.toISOString()],
              ['error', 'ERROR', (e) => preview(e, 50).replace(/^"|"$/g, '')],
              ['data', 'DATA', (d) => preview(d, 40)],
            ])}\n(${offset + 1}-${offset + items.length} of ${stats.dead}, newest first)`,
    )
    return EXIT.OK
  }
  if (action === 'retry') {
    const moved = await q.dead.retry(ctx.flags.all ? 'all' : ids)
    const wanted = ctx.flags.all ? moved : ids.length
    print(ctx, { moved, requested: ctx.flags.all ? 'all' : ids.length }, () =>
      moved === wanted ? `moved ${moved} back to '${name}'` : `moved ${moved} of ${wanted} back to '${name}'; the others are not among its dead letters`,
    )
    return moved === wanted ? EXIT.OK : EXIT.NOT_FOUND
  }
  const purged = await q.dead.purge()
  print(ctx, { purged }, () => `deleted ${purged} dead letters of '${name}'`)
  return EXIT.OK
}

async function cmdPause(ctx, paused) {
  const name = queueName(ctx)
  if (ctx.args.length > 1) throw new UsageError(`one queue at a time, got '${ctx.args[1]}' too`)
  const { queue: q } = await openQueue(ctx, name)
  await (paused ? q.pause() : q.resume())
  print(ctx, { name, paused }, () => `${paused ? 'paused' : 'resumed'} '${name}'${paused ? ' (jobs in flight finish; workers take nothing new)' : ''}`)
}

async function cmdWatch(ctx) {
  const name = queueName(ctx)
  const interval = positiveInt('interval', ctx.flags.interval, 1, { min: 1, max: 3600 })
  const count = positiveInt('count', ctx.flags.count, Infinity, { min: 1 })
  const { queue: q, mode } = await openQueue(ctx, name)
  const tty = ctx.io.stdout.isTTY && !ctx.flags.json
  let last = null
  let stop = false
  const onSignal = () => {
    stop = true
  }
  process.once('SIGINT', onSignal)
  try {
    for (let i = 0; i < count && !stop; i++) {
      if (i > 0) await sleepUnless(interval * 1000, () => stop)
      if (stop) break
      const s = await q.stats()
      const t = Date.now()
      const rate = (key) => (last ? Math.max(0, s[key] - last[key]) / ((t - last.t) / 1000) : null)
      const row = { t: new Date(t).toISOString(), ...s, completedPerSecond: rate('completed'), failedPerSecond: rate('failed') }
      last = { ...s, t }
      if (ctx.flags.json) {
        ctx.out(JSON.stringify(row))
        continue
      }
      const fmt = (v) => (v == null ? '-' : v.toFixed(1))
      const cols = [['t', 'TIME', (v) => v.slice(11, 19)], ...STAT_COLUMNS, ['completedPerSecond', 'DONE/S', fmt], ['failedPerSecond', 'FAILED/S', fmt]]
      const text = table([row], cols)
      if (tty) ctx.out(`\x1b[H\x1b[2Jholdfast watch '${name}' (${mode}), every ${interval}s; Ctrl-C to stop\n\n${text}`)
      else ctx.out(i === 0 ? text : text.split('\n')[1])
    }
  } finally {
    process.removeListener('SIGINT', onSignal)
  }
}

async function sleepUnless(ms, stopped) {
  const until = Date.now() + ms
  while (Date.now() < until && !stopped()) await new Promise((r) => setTimeout(r, Math.min(100, until - Date.now())))
}

async function cmdMetrics(ctx) {
  if (ctx.args.length === 0) throw new UsageError('which queues? give one or more names')
  const queues = []
  for (const name of ctx.args) queues.push((await openQueue(ctx, name)).queue)
  ctx.out(await metrics(queues))
}

async function cmdDashboard(ctx) {
  if (ctx.args.length > 0) throw new UsageError(`dashboard takes no arguments, got '${ctx.args[0]}'`)
  const host = ctx.flags.host ?? '127.0.0.1'
  const port = positiveInt('port', ctx.flags.port, 8722, { max: 65535 })
  const token = ctx.flags.token ?? (process.env.HOLDFAST_DASHBOARD_TOKEN || undefined)
  const loopback = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)
  if (!loopback && !token) throw new UsageError(`binding to ${host} lets others on the network in: give --token (or set HOLDFAST_DASHBOARD_TOKEN)`)
  const { createDashboardServer } = require('./dashboard/server.js')
  const { createSource } = require('./dashboard/source.js')
  const source = createSource(ctx.connection, { mode: flagMode(ctx.flags) })
  // fail now, with the CLI's message and exit code, if Redis cannot be reached
  await source.queues()
  const server = createDashboardServer({ source, token })
  await new Promise((resolve, reject) => {
    server.once('error', (e) => reject(Object.assign(new Error(`cannot listen on ${host}:${port}: ${e.message}`), { code: e.code })))
    server.listen(port, host, resolve)
  })
  const shown = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
  const url = `http://${shown}:${server.address().port}/${token ? `?token=${encodeURIComponent(token)}` : ''}`
  ctx.out(ctx.flags.json ? JSON.stringify({ url, host, port: server.address().port }) : `holdfast dashboard on ${url} (Ctrl-C to stop)`)
  await new Promise((resolve) => {
    const stop = () => server.close(() => resolve())
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  await source.close()
}

module.exports = { main, EXIT }
