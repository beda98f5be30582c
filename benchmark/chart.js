'use strict'
// Renders benchmark/results.json as an SVG chart: one panel per measurement, a horizontal bar per
// peer, each panel scaled to its own largest value (the panels have different units).
//
//   node benchmark/chart.js [results.json] [out.svg]
// bench.js calls render() itself after each run.

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
  return out.map((p) => ({ ...p, values: p.values.filter(([, v]) => typeof v === 'number' && Number.isFinite(v)) })).filter((p) => p.values.length)
}

function render(results) {
  const ps = panels(results)
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
  const sub = `N=${results.n}, concurrency ${results.concurrency}, redis ${results.redis}, node ${results.node}, ${results.cpus} cpus; ${results.date}`
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">`,
    '<style>.h{font-size:15px;font-weight:600}.t{font-size:12px;font-weight:600}.s{font-weight:400;fill:#57606a}.l{font-size:11px;text-anchor:end}.v{font-size:11px;fill:#24292f}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="20" class="h">holdfast benchmark, one redis-server, one run</text>`,
    `<text x="10" y="34" class="l" style="text-anchor:start;fill:#57606a">${esc(sub)}</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n')
}

module.exports = { render, panels }

if (require.main === module) {
  const input = process.argv[2] || path.join(__dirname, 'results.json')
  const output = process.argv[3] || input.replace(/\.json$/, '') + '.svg'
  fs.writeFileSync(output, render(JSON.parse(fs.readFileSync(input, 'utf8'))))
  console.error(`wrote ${output}`)
}
