'use strict'
// TLS from JS: `rediss://` urls and the `tls` option (PEM strings, Buffers, arrays), in both
// modes. The server listens for TLS only on the port the queues are given, so a connection that
// skipped TLS (the stream fetch connection included) would fail. The Rust suite
// (crates/core/tests/tls.rs) covers the same plus a restart of the TLS server.
const test = require('node:test')
const assert = require('node:assert/strict')
const { ReliableQueue } = require('..')
const { RedisServer, freePort, uniqueName, waitFor, MODES } = require('./helpers/redis-server')
const { makeCerts, tlsUnsupported } = require('./helpers/tls')

const certs = makeCerts()
let skip = false
let server, tlsPort

test.before(async () => {
  tlsPort = await freePort()
  skip = tlsUnsupported(certs, await freePort()) ?? false
  if (!skip) server = await RedisServer.start({ args: certs.serverArgs(tlsPort, true) })
})
test.after(async () => {
  if (server) await server.close()
  certs.close()
})

const mutual = () => ({ ca: certs.ca, cert: certs.clientCert, key: certs.clientKey })

async function roundTrip(queue, n) {
  const seen = []
  const worker = queue.process(async (job) => { seen.push(job.data.n) }, { concurrency: 8 })
  const errors = []
  worker.on('error', (e) => errors.push(e))
  await queue.addBulk(Array.from({ length: n }, (_, n) => ({ n })))
  await waitFor(() => seen.length >= n, 15_000, `${n} jobs over TLS`)
  await worker.close()
  assert.deepEqual(seen.sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i))
  assert.deepEqual(errors, [])
}

for (const mode of MODES) {
  test(`[${mode}] mutual TLS: rediss:// with ca, cert and key as strings, Buffers or arrays`, async (t) => {
    if (skip) return t.skip(skip)
    const variants = [
      mutual(),
      { ca: Buffer.from(certs.ca), cert: Buffer.from(certs.clientCert), key: Buffer.from(certs.clientKey) },
      { ...mutual(), ca: [certs.ca], servername: 'localhost' },
    ]
    for (const tls of variants) {
      const queue = new ReliableQueue(uniqueName('tls'), { url: `rediss://127.0.0.1:${tlsPort}`, tls, mode })
      t.after(() => queue.close())
      await roundTrip(queue, 30)
    }
    // the tls option turns TLS on for a redis:// url too
    const queue = new ReliableQueue(uniqueName('tls'), { url: `redis://localhost:${tlsPort}`, tls: mutual(), mode })
    t.after(() => queue.close())
    await roundTrip(queue, 5)
  })

  test(`[${mode}] a server that cannot be verified, or a missing client certificate, is refused with a code`, async (t) => {
    if (skip) return t.skip(skip)
    const cases = [
      // Mozilla's roots do not know the test CA
      [{ cert: certs.clientCert, key: certs.clientKey }, /TLS certificate verification failed.*UnknownIssuer/],
      // the certificate does not name redis.example.com
      [{ ...mutual(), servername: 'redis.example.com' }, /TLS certificate verification failed.*NotValidForName/],
      // the server asks for a client certificate and hangs up
      [{ ca: certs.ca }, /.+/],
    ]
    for (const [tls, message] of cases) {
      const queue = new ReliableQueue(uniqueName('tls'), { url: `rediss://127.0.0.1:${tlsPort}`, tls, mode })
      t.after(() => queue.close())
      const started = performance.now()
      const err = await queue.add({ n: 1 }).then(() => null, (e) => e)
      assert.ok(err, 'add must reject')
      assert.equal(err.code, 'ERR_HOLDFAST_CONNECTION', err.message)
      assert.match(err.message, message)
      assert.ok(performance.now() - started < 5_000, 'refused within seconds')
      const errors = []
      const worker = queue.process(async () => {})
      worker.on('error', (e) => errors.push(e))
      await waitFor(() => errors.length > 0, 10_000, 'a worker error event')
      assert.equal(errors[0].code, 'ERR_HOLDFAST_CONNECTION')
      assert.match(errors[0].message, message)
      await worker.close()
    }
    // rejectUnauthorized: false needs no CA (still a client certificate: the server asks)
    const tls = { cert: certs.clientCert, key: certs.clientKey, rejectUnauthorized: false }
    const queue = new ReliableQueue(uniqueName('tls'), { url: `rediss://127.0.0.1:${tlsPort}`, tls, mode })
    t.after(() => queue.close())
    await roundTrip(queue, 5)
  })
}

test('bad tls options throw ERR_HOLDFAST_INVALID_ARGUMENT with the reason', () => {
  const cases = [
    [{ ca: 42 }, /tls\.ca must be a PEM string or Buffer/],
    [{ ca: 'not a pem' }, /tls\.ca/],
    [{ cert: certs.clientCert }, /tls\.cert and tls\.key go together/],
    [{ passphrase: 'x' }, /encrypted private keys are not supported/],
    [{ rejectUnauthorized: 'no' }, /rejectUnauthorized must be a boolean/],
    ['yes', /tls must be an object/],
  ]
  for (const [tls, message] of cases) {
    assert.throws(() => new ReliableQueue('q', { url: 'rediss://127.0.0.1:1', tls }), (e) => {
      assert.equal(e.code, 'ERR_HOLDFAST_INVALID_ARGUMENT')
      assert.match(e.message, message)
      return true
    })
  }
  assert.throws(() => new ReliableQueue('q', { url: 'redis+unix:///tmp/x.sock', tls: true }), /unix socket/)
})

test('the holdfast command over mutual TLS, with --tls-ca / --tls-cert / --tls-key files', async (t) => {
  if (skip) return t.skip(skip)
  const { execFile } = require('node:child_process')
  const fs = require('node:fs')
  const os = require('node:os')
  const path = require('node:path')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'holdfast-cli-tls-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const files = { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey }
  for (const [name, pem] of Object.entries(files)) fs.writeFileSync(path.join(dir, `${name}.pem`), pem)
  const name = uniqueName('cli-tls')
  const queue = new ReliableQueue(name, { url: `rediss://127.0.0.1:${tlsPort}`, tls: mutual() })
  t.after(() => queue.close())
  await queue.addBulk([1, 2])
  const run = (args) =>
    new Promise((resolve) => {
      const bin = path.join(__dirname, '..', 'bin', 'holdfast.js')
      execFile(process.execPath, [bin, ...args], { env: { ...process.env, REDIS_URL: '' } }, (err, stdout, stderr) =>
        resolve({ code: err ? err.code : 0, stdout, stderr }),
      )
    })
  const url = ['--url', `rediss://127.0.0.1:${tlsPort}`]
  const tlsFlags = ['--tls-ca', path.join(dir, 'ca.pem'), '--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem')]
  const ok = await run(['stats', name, ...url, ...tlsFlags, '--json'])
  assert.equal(ok.code, 0, ok.stderr)
  assert.equal(JSON.parse(ok.stdout).waiting, 2)
  // --tls with a redis:// url
  const flag = await run(['peek', name, '--url', `redis://localhost:${tlsPort}`, '--tls', ...tlsFlags, '--json'])
  assert.equal(flag.code, 0, flag.stderr)
  assert.equal(JSON.parse(flag.stdout).length, 2)
  const unverified = await run(['stats', name, ...url])
  assert.equal(unverified.code, 1)
  assert.match(unverified.stderr, /^holdfast: .*certificate/)
})
