'use strict'
// A throwaway redis-server on a free port in a temp dir, for the tests, the demo and the
// benchmark: `RedisServer.start()`, `stop()` (SIGKILL, like a crash), `restart()` (same port),
// `close()`. No dependencies beyond node itself.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

function ping(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1')
    let buf = ''
    sock.setTimeout(500, () => sock.destroy())
    sock.on('connect', () => sock.write('PING\r\n'))
    sock.on('data', (d) => {
      buf += d
      if (buf.includes('\r\n')) {
        sock.destroy()
        resolve(buf.startsWith('+PONG') || buf.startsWith('-NOAUTH')) // up, with a password set
      }
    })
    sock.on('error', () => resolve(false))
    sock.on('close', () => resolve(false))
  })
}

class RedisServer {
  /**
   * `args`: extra redis-server arguments, e.g. ['--appendonly', 'yes'] for a persistence test.
   * `sentinel`: the configuration of a Redis Sentinel to run instead (it rewrites the file).
   */
  static async start({ args = [], sentinel } = {}) {
    const server = new RedisServer(await freePort(), args)
    if (sentinel !== undefined) {
      server.conf = path.join(server.dir, 'sentinel.conf')
      fs.writeFileSync(server.conf, sentinel)
    }
    await server.restart()
    return server
  }

  constructor(port, extraArgs = []) {
    this.port = port
    this.extraArgs = extraArgs
    this.url = `redis://127.0.0.1:${port}`
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'holdfast-redis-'))
    this.logFile = path.join(this.dir, 'redis.log')
    this.proc = null
  }

  async restart() {
    if (this.proc) throw new Error('redis-server already running')
    const bin = process.env.REDIS_SERVER_BIN || 'redis-server'
    const args = [...(this.conf ? [this.conf, '--sentinel'] : []), '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', this.dir, '--logfile', this.logFile, ...this.extraArgs]
    const proc = spawn(bin, args, { stdio: 'ignore' })
    this.proc = proc
    let exited = false
    proc.once('exit', () => {
      exited = true
      if (this.proc === proc) this.proc = null
    })
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      if (exited) break
      if (await ping(this.port)) return
      await new Promise((r) => setTimeout(r, 25))
    }
    this.dumpLog()
    throw new Error(`redis-server on port ${this.port} did not start`)
  }

  /** SIGKILL: the server vanishes without a goodbye, like a crash. */
  async stop() {
    const proc = this.proc
    if (!proc) return
    const gone = new Promise((r) => proc.once('exit', r))
    proc.kill('SIGKILL')
    await gone
  }

  dumpLog() {
    try {
      process.stderr.write(`--- redis-server log (${this.logFile}) ---\n${fs.readFileSync(this.logFile, 'utf8')}\n`)
    } catch {}
  }

  async close() {
    await this.stop()
    fs.rmSync(this.dir, { recursive: true, force: true })
  }
}

module.exports = { RedisServer, freePort }
