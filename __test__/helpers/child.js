'use strict'
const { spawn } = require('node:child_process')
const path = require('node:path')
const readline = require('node:readline')

/** Starts a fixture script; `lines` collects its JSON lines, `waitLine(pred)` awaits one. */
function startFixture(name, env) {
  const proc = spawn(process.execPath, [path.join(__dirname, '..', 'fixtures', name)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const lines = []
  const waiters = []
  readline.createInterface({ input: proc.stdout }).on('line', (line) => {
    let msg
    try {
      msg = JSON.parse(line)
    } catch {
      return
    }
    lines.push(msg)
    for (const w of [...waiters]) {
      if (w.pred(msg)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(msg)
      }
    }
  })
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })))
  function waitLine(pred, ms = 20_000) {
    const found = lines.find(pred)
    if (found) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const w = { pred, resolve }
      waiters.push(w)
      setTimeout(() => reject(new Error(`fixture ${name}: no matching line within ${ms} ms`)), ms).unref()
      exited.then(({ code, signal }) => reject(new Error(`fixture ${name} exited (${code ?? signal})`)))
    })
  }
  return { proc, lines, waitLine, exited }
}

module.exports = { startFixture }
