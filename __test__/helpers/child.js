'use strict'
const { spawn } = require('node:child_process')
const path = require('node:path')
const readline = require('node:readline')

/**
 * Runs `node <file>`; `lines` collects its stdout lines (each passed through `parse`; those it
 * returns undefined for are skipped), `waitLine(pred)` awaits one, `stop(signal)` ends it.
 */
function startProgram(file, { cwd, env = process.env, parse = (line) => line, stderr = 'inherit' } = {}) {
  const proc = spawn(process.execPath, [file], { cwd, env, stdio: ['ignore', 'pipe', stderr] })
  const lines = []
  let errText = ''
  if (proc.stderr) proc.stderr.on('data', (d) => (errText += d))
  const waiters = []
  readline.createInterface({ input: proc.stdout }).on('line', (line) => {
    const msg = parse(line)
    if (msg === undefined) return
    lines.push(msg)
    for (const w of [...waiters]) {
      if (w.pred(msg)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(msg)
      }
    }
  })
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })))
  const describe = () => `${file}: stdout:\n${lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n')}\nstderr:\n${errText}`
  function waitLine(pred, ms = 20_000) {
    const found = lines.find(pred)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const w = { pred, resolve }
      waiters.push(w)
      setTimeout(() => reject(new Error(`${file}: no matching line within ${ms} ms; ${describe()}`)), ms).unref()
      exited.then(({ code, signal }) => setImmediate(() => waiters.includes(w) && reject(new Error(`${file} exited (${code ?? signal}); ${describe()}`))))
    })
  }
  async function stop(signal) {
    proc.kill(signal)
    const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000)
    const result = await exited
    clearTimeout(timer)
    return result
  }
  return { proc, lines, waitLine, exited, describe, stop }
}

/** Starts a fixture script of __test__/fixtures; its stdout is JSON lines. */
function startFixture(name, env) {
  return startProgram(path.join(__dirname, '..', 'fixtures', name), {
    env: { ...process.env, ...env },
    parse(line) {
      try {
        return JSON.parse(line)
      } catch {
        return undefined
      }
    },
  })
}

module.exports = { startFixture, startProgram }
