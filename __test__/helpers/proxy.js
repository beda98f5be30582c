'use strict'
// A TCP proxy between holdfast and Redis that the fault tests break on purpose:
// - `reset()`: every link ends with a TCP RST, both sides, as when a NAT or a load balancer
//   drops its flows;
// - `stall(ms)`: nothing crosses in either direction for `ms`, then the held bytes flow again,
//   as in a network stall (TCP retransmits: bytes arrive late, never lost or reordered). New
//   links made meanwhile are held too. With `{ thenReset: true }` the links die at the end
//   instead, the way a half-open connection ends.
// The proxy's own kernel acknowledges what holdfast sends, so to holdfast a stall looks like a
// Redis that does not answer; a link whose packets vanish is crates/core/tests/half_open.rs.

const net = require('node:net')

class FaultyProxy {
  static async start(targetPort) {
    const proxy = new FaultyProxy(targetPort)
    await new Promise((resolve, reject) => {
      proxy.server.once('error', reject)
      proxy.server.listen(0, '127.0.0.1', resolve)
    })
    proxy.port = proxy.server.address().port
    proxy.url = `redis://127.0.0.1:${proxy.port}`
    return proxy
  }

  constructor(targetPort) {
    this.targetPort = targetPort
    this.links = new Set()
    this.stalled = false
    this.resets = 0
    this.server = net.createServer((client) => this.link(client))
  }

  link(client) {
    const upstream = net.connect(this.targetPort, '127.0.0.1')
    const link = { client, upstream, held: [] }
    this.links.add(link)
    const forward = (to) => (data) => {
      if (this.stalled) link.held.push([to, data])
      else to.write(data)
    }
    client.on('data', forward(upstream))
    upstream.on('data', forward(client))
    const end = () => {
      if (!this.links.delete(link)) return
      client.destroy()
      upstream.destroy()
    }
    for (const s of [client, upstream]) {
      s.on('error', end)
      s.on('close', end)
    }
  }

  /** Every link ends with an RST on both sides. */
  reset() {
    for (const link of [...this.links]) {
      this.links.delete(link)
      link.client.resetAndDestroy()
      link.upstream.resetAndDestroy()
      this.resets++
    }
  }

  async stall(ms, { thenReset = false } = {}) {
    this.stalled = true
    await new Promise((r) => setTimeout(r, ms))
    this.stalled = false
    if (thenReset) return this.reset()
    for (const link of this.links) {
      for (const [to, data] of link.held.splice(0)) to.write(data)
    }
  }

  async close() {
    this.reset()
    await new Promise((r) => this.server.close(r))
  }
}

module.exports = { FaultyProxy }
