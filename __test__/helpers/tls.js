'use strict'
// A CA made for one test file, with a server certificate (localhost, 127.0.0.1) and a client
// certificate it signed, by the openssl CLI; and whether this redis-server speaks TLS at all.
const { execFileSync, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

function makeCerts() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'holdfast-tls-'))
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=holdfast test CA')
  const exts = {
    server: 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n',
    client: 'extendedKeyUsage=clientAuth\n',
  }
  for (const [name, ext] of Object.entries(exts)) {
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext)
    openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`)
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`)
  }
  const file = (f) => path.join(dir, f)
  const read = (f) => fs.readFileSync(file(f), 'utf8')
  return {
    ca: read('ca.crt'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
    /** redis-server arguments for a TLS port; `authClients`: mutual TLS. */
    serverArgs(tlsPort, authClients = false) {
      return ['--tls-port', String(tlsPort), '--tls-cert-file', file('server.crt'), '--tls-key-file', file('server.key'),
        '--tls-ca-cert-file', file('ca.crt'), '--tls-auth-clients', authClients ? 'yes' : 'no']
    },
    close() {
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** null when REDIS_SERVER_BIN (or redis-server) was built with TLS, else why not. */
function tlsUnsupported(certs, port) {
  const bin = process.env.REDIS_SERVER_BIN || 'redis-server'
  // a server with TLS keeps running (killed after the timeout); one without exits at once
  const run = spawnSync(bin, ['--port', '0', '--save', '', '--appendonly', 'no', ...certs.serverArgs(port)], {
    timeout: 1500,
    killSignal: 'SIGKILL',
    encoding: 'utf8',
  })
  if (run.signal) return null
  const said = `${run.stdout}${run.stderr}`.split('\n').filter((l) => /tls/i.test(l)).join(' ').trim()
  return `${bin} is built without TLS (${said || `exit ${run.status}`})`
}

module.exports = { makeCerts, tlsUnsupported }
