'use strict'
// Renders benchmark/results.json (bench.js), cost.json (cost.js) or idle.json (idle.js) as an SVG
// chart: one panel per measurement, a horizontal bar per peer, each panel scaled to its own
// largest value (the panels have different units).
//
//   node benchmark/chart.js [results.json|cost.json|idle.json] [out.svg]
// bench.js, cost.js and idle.js call render(), renderCost(), renderIdle() after each run.

const fs = require('node:fs')
const path = require('node:path')

const COLORS = {
  holdfast: '#1f6feb',
  'holdfast-list': '#58a6ff',
  bullmq: '#d1242f',
  'bee-queue': '#bf8700',
  'redis-stream': '#6e7781',
  'redis-list': '#afb8c1',
}
const WIDTH = 760
const LABEL_W = 120
const VALUE_W = 90
const BAR_H = 14
const GAP = 4
const PANEL_GAP = 22

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
const fmt = (v, unit) => (unit === 'jobs/s' ? Math.round(v).toLocaleString('en-US') : String(v))

/** Panels from a results.json object: [{ title, unit, better, values: [[peer, value], ...] }]. */
function panels(results) {
  const peers = Object.keys(results.peers)
  const out = []
  for (const [id, s] of Object.entries(results.scenarios)) {
    out.push({ title: `${s.label}: jobs/s`, unit: 'jobs/s', better: 'higher', values: peers.map((p) => [p, s[p]?.jobsPerSec]) })
  }
  if (results.latency) {
    for (const k of ['p50', 'p99']) {
      out.push({
        title: `latency at ${results.latency.rate} jobs/s, ${k}: ms`,
        unit: 'ms',
        better: 'lower',
        values: peers.map((p) => [p, results.latency[p]?.[k]]),
      })
    }
  }
  const mem = results.scenarios.addBulk
  if (mem && peers.some((p) => mem[p]?.redisBytesPerJob !== undefined)) {
    out.push({
      title: `Redis bytes per waiting job (payload ${results.payload?.avgBytes ?? '?'} B)`,
      unit: 'B',
      better: 'lower',
      values: peers.map((p) => [p, mem[p]?.redisBytesPerJob]),
    })
  }
  const drained = results.scenarios.drain
  if (drained && peers.some((p) => drained[p]?.redisBytesPerJob !== undefined)) {
    out.push({
      title: 'Redis bytes per job after the drain (all jobs done)',
      unit: 'B',
      better: 'lower',
      values: peers.map((p) => [p, drained[p]?.redisBytesPerJob]),
    })
  }
  if (results.rss) {
    for (const k of ['idleMb', 'loadMb']) {
      out.push({
        title: `worker process RSS, ${k === 'idleMb' ? 'idle' : 'peak while draining'}: MB`,
        unit: 'MB',
        better: 'lower',
        values: peers.map((p) => [p, results.rss[p]?.[k]]),
      })
    }
  }
  return clean(out)
}

/** Panels from cost.json (cost.js): Redis CPU per job at each payload size, and the growth. */
function costPanels(cost) {
  const peers = [...new Set(cost.rows.map((r) => r.peer))]
  const sizes = [...new Set(cost.rows.map((r) => r.size))]
  const at = (peer, size) => cost.rows.find((r) => r.peer === peer && r.size === size)
  const out = sizes.map((size) => ({
    title: `Redis CPU per job, add + drain, ${size >= 1024 ? `${size / 1024} KB` : `${size} B`} payload: us`,
    unit: 'us',
    better: 'lower',
    values: peers.map((p) => [p, at(p, size)?.totalUs]),
  }))
  const [lo, hi] = [Math.min(...sizes), Math.max(...sizes)]
  if (hi > lo) {
    out.push({
      title: `growth of Redis CPU per job from ${lo} B to ${hi / 1024} KB: times`,
      unit: 'x',
      better: 'lower',
      values: peers.map((p) => [p, at(p, hi) && at(p, lo) ? +(at(p, hi).totalUs / at(p, lo).totalUs).toFixed(1) : undefined]),
    })
  }
  return clean(out)
}

/** Panels from idle.json (idle.js): commands per idle queue, and CPU at the most queues. */
function idlePanels(idle) {
  const peers = [...new Set(idle.rows.map((r) => r.peer))]
  const counts = [...new Set(idle.rows.map((r) => r.queues))]
  const at = (peer, n) => idle.rows.find((r) => r.peer === peer && r.queues === n)
  const most = Math.max(...counts)
  const out = counts.map((n) => ({
    title: `${n === 1 ? '1 idle queue, one worker' : `${n} idle queues, one worker each`}: Redis commands/s per queue`,
    unit: 'cmd/s',
    better: 'lower',
    values: peers.map((p) => [p, at(p, n)?.commandsPerSecPerQueue]),
  }))
  for (const [k, what] of [['nodeCpuPct', 'worker process'], ['redisCpuPct', 'redis-server']]) {
    out.push({ title: `${most} idle queues: ${what} CPU, % of a core`, unit: '%', better: 'lower', values: peers.map((p) => [p, at(p, most)?.[k]]) })
  }
  return clean(out)
}

function clean(ps) {
  return ps.map((p) => ({ ...p, values: p.values.filter(([, v]) => typeof v === 'number' && Number.isFinite(v)) })).filter((p) => p.values.length)
}

function render(results) {
  const sub = `N=${results.n}, concurrency ${results.concurrency}, redis ${results.redis}, node ${results.node}, ${results.cpus} cpus; ${results.date}`
  return svg('holdfast benchmark, one redis-server, one run', sub, panels(results))
}

function renderCost(cost) {
  const sub = `each peer on its own redis-server; median of ${cost.rounds} rounds; node ${cost.node}, ${cost.cpus} cpus; ${cost.date}`
  return svg('What a job costs Redis (INFO cpu)', sub, costPanels(cost))
}

function renderIdle(idle) {
  const sub = `each point on its own redis-server; ${idle.window_ms / 1000} s window after settling; node ${idle.node}, ${idle.cpus} cpus; ${idle.date}`
  return svg('What idle queues cost', sub, idlePanels(idle))
}

function svg(heading, sub, ps) {
  const barW = WIDTH - LABEL_W - VALUE_W - 20
  let y = 60
  const parts = []
  for (const p of ps) {
    const max = Math.max(...p.values.map(([, v]) => v)) || 1
    parts.push(`<text x="10" y="${y}" class="t">${esc(p.title)} <tspan class="s">(${p.better} is better)</tspan></text>`)
    y += 8
    for (const [peer, v] of p.values) {
      const w = Math.max(1, Math.round((v / max) * barW))
      parts.push(
        `<text x="${LABEL_W - 6}" y="${y + BAR_H - 3}" class="l">${esc(peer)}</text>`,
        `<rect x="${LABEL_W}" y="${y}" width="${w}" height="${BAR_H}" fill="${COLORS[peer] ?? '#8250df'}"/>`,
        `<text x="${LABEL_W + w + 6}" y="${y + BAR_H - 3}" class="v">${esc(fmt(v, p.unit))}</text>`,
      )
      y += BAR_H + GAP
    }
    y += PANEL_GAP
  }
  const height = y
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">`,
    '<style>.h{font-size:15px;font-weight:600}.t{font-size:12px;font-weight:600}.s{font-weight:400;fill:#57606a}.l{font-size:11px;text-anchor:end}.v{font-size:11px;fill:#24292f}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="20" class="h">${esc(heading)}</text>`,
    `<text x="10" y="34" class="l" style="text-anchor:start;fill:#57606a">${esc(sub)}</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n')
}

module.exports = { render, renderCost, renderIdle, panels }

if (require.main === module) {
  const input = process.argv[2] || path.join(__dirname, 'results.json')
  const output = process.argv[3] || input.replace(/\.json$/, '') + '.svg'
  const data = JSON.parse(fs.readFileSync(input, 'utf8'))
  // cost.json has size rows, idle.json queue-count rows, results.json scenarios
  const draw = data.scenarios ? render : data.rows?.[0]?.size !== undefined ? renderCost : renderIdle
  fs.writeFileSync(output, draw(data))
  console.error(`wrote ${output}`)
}
