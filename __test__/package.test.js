'use strict'
// The package as a user gets it: dist/'s tarballs (`npm run package`) installed into a fresh
// project with no Rust toolchain on PATH, then used from CommonJS, ESM and strict TypeScript
// (without @types/node), the README's programs run as pasted, and the binaries checked.
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { platformName } = require('../lib/native.js')
const { startProgram } = require('./helpers/child')

const ROOT = path.resolve(__dirname, '..')
const DIST = path.join(ROOT, 'dist')
const pkg = require('../package.json')
const PLATFORM = platformName()
const MAIN_TGZ = path.join(DIST, `${pkg.name}-${pkg.version}.tgz`)
const platformTgz = (platform) => path.join(DIST, `${pkg.name}-${platform}-${pkg.version}.tgz`)
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
const WIN = process.platform === 'win32'

/** PATH without the directories that hold cargo or rustc. */
function pathWithoutRust() {
  return process.env.PATH.split(path.delimiter)
    .filter((dir) => !['cargo', 'rustc', 'cargo.exe', 'rustc.exe'].some((b) => fs.existsSync(path.join(dir, b))))
    .join(path.delimiter)
}

let project // the fresh project holdfast is installed into
let redis // { url, stop() }
let env // what every program of the project runs with

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, shell: WIN, timeout: 120_000, ...opts })
  if (r.error) throw r.error
  return r
}

function ok(r, what) {
  assert.equal(r.status, 0, `${what} failed (${r.status}):\n${r.stdout}\n${r.stderr}`)
  return r
}

function write(dir, file, text) {
  fs.writeFileSync(path.join(dir, file), text)
  return path.join(dir, file)
}

/** A new npm project in a temp dir: `{ "private": true }` and nothing else. */
function newProject(label) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `holdfast-${label}-`))
  write(dir, 'package.json', `${JSON.stringify({ name: `try-${label}`, version: '1.0.0', private: true }, null, 2)}\n`)
  return dir
}

before(async () => {
  for (const t of [MAIN_TGZ, platformTgz(PLATFORM)]) {
    assert.ok(fs.existsSync(t), `${path.relative(ROOT, t)} is missing: run \`npm run package\` first`)
  }
  env = { ...process.env, PATH: pathWithoutRust(), npm_config_audit: 'false', npm_config_fund: 'false' }
  delete env.CARGO
  delete env.RUSTUP_TOOLCHAIN
  if (process.env.REDIS_URL) {
    redis = { url: process.env.REDIS_URL, stop: async () => {} }
  } else {
    const { RedisServer } = require('../scripts/redis-server.js')
    const server = await RedisServer.start()
    redis = { url: server.url, stop: () => server.close() }
  }
  env.REDIS_URL = redis.url
  project = newProject('install')
  // --offline: the two tarballs are all it needs; the other platforms' packages are optional
  ok(sh('npm', ['install', '--offline', MAIN_TGZ, platformTgz(PLATFORM)], { cwd: project }), 'npm install')
})

after(async () => {
  if (redis) await redis.stop()
  if (project) fs.rmSync(project, { recursive: true, force: true })
})

test('the project has no Rust toolchain and no @types/node', () => {
  const cargo = spawnSync('cargo', ['--version'], { env, shell: WIN, encoding: 'utf8' })
  assert.notEqual(cargo.status, 0, 'cargo is still on PATH')
  assert.ok(!fs.existsSync(path.join(project, 'node_modules', '@types')), 'node_modules/@types exists')
})

test('the main package: no binary, an optionalDependency per target, exports for import and require', () => {
  const dir = path.join(project, 'node_modules', pkg.name)
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
  const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [e.name]))
  assert.deepEqual(walk(dir).filter((f) => f.endsWith('.node')), [])
  const platforms = pkg.napi.targets.map((t) => require('../scripts/package.js').platformOf(t))
  assert.deepEqual(manifest.optionalDependencies, Object.fromEntries(platforms.map((p) => [`${pkg.name}-${p}`, pkg.version])))
  const root = manifest.exports['.']
  assert.ok(root.import.types && root.import.default && root.require.types && root.require.default)
  for (const f of [root.import.types, root.import.default, root.require.types, root.require.default, 'LICENSE', 'README.md']) {
    assert.ok(fs.existsSync(path.join(dir, f)), `${f} is not in the package`)
  }
  for (const field of ['repository', 'homepage', 'bugs', 'keywords', 'license']) assert.ok(manifest[field], `no ${field}`)
  assert.equal(manifest.devDependencies, undefined)
  assert.equal(manifest.scripts, undefined)
})

/** A program that adds one job per mode and prints what its handler received. */
function roundTrip(label, importLine) {
  return `${importLine}
const name = 'pkg-${label}-' + process.pid
const out = []
for (const mode of ['stream', 'list']) {
  const queue = new ReliableQueue(name + '-' + mode, { mode })
  const got = []
  const done = new Promise((resolve, reject) => {
    const worker = queue.process(async (job) => job.data)
    worker.on('completed', (job) => got.push(job.data) === 2 && resolve())
    worker.on('failed', (job, err) => reject(err))
  })
  const sent = { from: '${label}', mode, list: [1, 'two', null], nested: { ok: true } }
  const bytes = new Uint8Array([0xff, 0, 0x80, 1])
  await queue.add(sent)
  await queue.add(bytes)
  await done
  const json = got.find((d) => !(d instanceof Uint8Array))
  const bin = got.find((d) => d instanceof Uint8Array)
  if (JSON.stringify(json) !== JSON.stringify(sent)) throw new Error('got ' + JSON.stringify(json))
  if (!bin || bin.length !== 4 || bin.some((b, i) => b !== bytes[i])) throw new Error('bytes changed: ' + String(bin && [...bin]))
  await queue.close()
  out.push(mode)
}
console.log('ran ' + out.join(' '))
`
}

test('CommonJS: require, then JSON and bytes jobs end to end in both modes', () => {
  write(project, 'job.cjs', `(async () => {\n${roundTrip('cjs', "const { ReliableQueue } = require('holdfast')")}\n})().catch((e) => { console.error(e); process.exit(1) })\n`)
  const r = ok(sh(process.execPath, ['job.cjs'], { cwd: project, shell: false }), 'job.cjs')
  assert.match(r.stdout, /ran stream list/)
})

test('ESM: import, then JSON and bytes jobs end to end in both modes', () => {
  write(project, 'job.mjs', roundTrip('esm', "import { ReliableQueue } from 'holdfast'\nimport holdfast from 'holdfast'\nif (holdfast.ReliableQueue !== ReliableQueue) throw new Error('two copies')"))
  const r = ok(sh(process.execPath, ['job.mjs'], { cwd: project, shell: false }), 'job.mjs')
  assert.match(r.stdout, /ran stream list/)
})

const TYPICAL_TS = `import { ReliableQueue, HoldfastError, type Job } from 'holdfast'

interface Email {
  to: string
  subject?: string
  tags: string[]
}

export async function run(): Promise<number> {
  const queue = new ReliableQueue<Email>('email', { mode: 'stream' })
  const id: string = await queue.add({ to: 'ada@example.com', tags: [] }, { jobId: 'welcome-ada', delayMs: 10 })
  // @ts-expect-error: \`to\` is required
  await queue.add({ subject: 'no recipient', tags: [] })
  const worker = queue.process(async (job: Job<Email>) => {
    if (job.signal.aborted) return 0
    return job.data.to.length + job.attempt
  }, { concurrency: 8 })
  worker.on('failed', (job, err, willRetry) => void [job.data.subject, err.message, willRetry])
  worker.on('error', (err: HoldfastError) => void err.code)
  const { waiting } = await queue.stats()
  await queue.close()
  return waiting + id.length
}

// payloads that JSON would change are compile errors
// @ts-expect-error: a Date does not survive JSON
new ReliableQueue<{ at: Date }>('dates')
// @ts-expect-error: nor does a Map
new ReliableQueue<{ seen: Map<string, number> }>('maps')
// @ts-expect-error: nor a bigint
new ReliableQueue<{ n: bigint }>('bigints')
// bytes as the whole payload travel as bytes
new ReliableQueue<Uint8Array>('images')
`

const TSCONFIG = (extra, files) =>
  JSON.stringify({ compilerOptions: { strict: true, noEmit: true, target: 'ES2022', skipLibCheck: false, ...extra }, files }, null, 2)

test('strict TypeScript, moduleResolution nodenext (CommonJS and ESM files), without @types/node', () => {
  write(project, 'typical.ts', TYPICAL_TS)
  write(project, 'typical.mts', TYPICAL_TS)
  // no DOM lib either: the types must stand on ES2022 alone
  write(project, 'tsconfig.nodenext.json', TSCONFIG({ module: 'nodenext', moduleResolution: 'nodenext', lib: ['ES2022'] }, ['typical.ts', 'typical.mts']))
  ok(sh(process.execPath, [TSC, '-p', 'tsconfig.nodenext.json'], { cwd: project, shell: false }), 'tsc (nodenext)')
})

test('strict TypeScript, moduleResolution bundler, without @types/node', () => {
  write(project, 'typical.ts', TYPICAL_TS)
  write(project, 'tsconfig.bundler.json', TSCONFIG({ module: 'esnext', moduleResolution: 'bundler', lib: ['ES2022', 'DOM'] }, ['typical.ts']))
  ok(sh(process.execPath, [TSC, '-p', 'tsconfig.bundler.json'], { cwd: project, shell: false }), 'tsc (bundler)')
})

test('without its platform package, require names the package to install (ERR_HOLDFAST_NATIVE_MISSING)', () => {
  const dir = newProject('no-optional')
  try {
    ok(sh('npm', ['install', '--offline', '--omit=optional', MAIN_TGZ], { cwd: dir }), 'npm install --omit=optional')
    const probe = "try { require('holdfast'); console.log('{}') } catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })) }"
    const r = ok(sh(process.execPath, ['-e', probe], { cwd: dir, shell: false }), 'probe')
    const err = JSON.parse(r.stdout)
    assert.equal(err.code, 'ERR_HOLDFAST_NATIVE_MISSING')
    assert.equal(err.name, 'HoldfastError')
    assert.ok(err.message.includes(`${pkg.name}-${PLATFORM}@${pkg.version}`), err.message)
    assert.match(err.message, /--omit=optional/)
    assert.match(err.message, /lock file/)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

/** The fenced block after `<!-- file: NAME -->` in the README. */
function readmeProgram(name) {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
  const m = new RegExp(`<!-- file: ${name.replace('.', '\\.')} -->\\s*\`\`\`js\\n([\\s\\S]*?)\`\`\``).exec(readme)
  assert.ok(m, `README.md has no block marked <!-- file: ${name} -->`)
  return m[1]
}

/** Runs a program of the project; `waitLine(re)` resolves with the first stdout line matching. */
function start(file) {
  const run = startProgram(file, { cwd: project, env, stderr: 'pipe' })
  return { ...run, waitLine: (re) => run.waitLine((line) => re.test(line), 30_000) }
}

for (const signal of ['SIGTERM', 'SIGINT']) {
  test(`the README's quick start runs as pasted and exits cleanly on ${signal}`, { skip: WIN && 'no POSIX signals on Windows' }, async () => {
    write(project, 'quickstart.js', readmeProgram('quickstart.js'))
    const run = start('quickstart.js')
    const added = await run.waitLine(/^added job \S+$/)
    await run.waitLine(new RegExp(`^job ${added.split(' ')[2]} done$`))
    const { code, signal: killed } = await run.stop(signal)
    assert.deepEqual({ code, killed }, { code: 0, killed: null }, run.describe())
    assert.ok(run.lines.includes(`${signal}: finishing the jobs in flight`), run.describe())
  })
}

test("the README's producer and worker, as two processes", { skip: WIN && 'no POSIX signals on Windows' }, async () => {
  write(project, 'producer.js', readmeProgram('producer.js'))
  write(project, 'worker.js', readmeProgram('worker.js'))
  const worker = start('worker.js')
  const producer = start('producer.js')
  const bulk = await producer.waitLine(/^added 10 jobs: /)
  assert.deepEqual(await producer.exited, { code: 0, signal: null }, producer.describe())
  for (const id of bulk.replace(/^added 10 jobs: /, '').split(' ')) await worker.waitLine(new RegExp(`^job ${id} done$`))
  const { code } = await worker.stop('SIGTERM')
  assert.equal(code, 0, worker.describe())
})

/** The ELF machine of a binary (e_machine): 62 x86-64, 183 AArch64. */
function elfMachine(file) {
  const head = Buffer.alloc(20)
  const fd = fs.openSync(file, 'r')
  fs.readSync(fd, head, 0, 20, 0)
  fs.closeSync(fd)
  assert.equal(head.toString('latin1', 0, 4), '\x7fELF', `${file} is not an ELF file`)
  return head.readUInt16LE(18)
}

/** The `.node` file inside a platform tarball, extracted into a temp dir. */
function binaryOf(platform) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'holdfast-bin-'))
  ok(sh('tar', ['-xzf', platformTgz(platform), '-C', dir]), 'tar')
  return path.join(dir, 'package', `${pkg.napi.binaryName}.${platform}.node`)
}

const LINUX_BINARIES = { 'linux-x64-gnu': 62, 'linux-arm64-gnu': 183, 'linux-x64-musl': 62 }
for (const [platform, machine] of Object.entries(LINUX_BINARIES)) {
  // `npm run package -- --cross` (which npm test runs on linux-x64) builds all three
  const skip = !fs.existsSync(platformTgz(platform)) && `no ${path.basename(platformTgz(platform))}`
  test(`${platform}: an ELF binary for the right machine and libc, loadable on glibc 2.17+`, { skip }, () => {
    const bin = binaryOf(platform)
    try {
      assert.equal(elfMachine(bin), machine)
      const dynamic = ok(sh('objdump', ['-p', bin]), 'objdump -p').stdout
      const needed = [...dynamic.matchAll(/NEEDED\s+(\S+)/g)].map((m) => m[1])
      if (platform.endsWith('-musl')) {
        assert.ok(needed.includes('libc.so') && !needed.includes('libc.so.6'), `NEEDED: ${needed}`)
      } else {
        const versions = [...ok(sh('objdump', ['-T', bin]), 'objdump -T').stdout.matchAll(/GLIBC_(\d+)\.(\d+)/g)]
        const floor = versions.map((m) => [Number(m[1]), Number(m[2])]).sort((a, b) => a[0] - b[0] || a[1] - b[1]).pop()
        assert.ok(floor, 'no GLIBC_ symbol versions found')
        assert.ok(floor[0] === 2 && floor[1] <= 17, `needs GLIBC_${floor.join('.')}, above 2.17`)
      }
    } finally {
      fs.rmSync(path.dirname(path.dirname(bin)), { recursive: true, force: true })
    }
  })
}

test('npm publish --dry-run accepts every tarball', () => {
  const tarballs = fs.readdirSync(DIST).filter((f) => f.endsWith(`${pkg.version}.tgz`))
  assert.ok(tarballs.length >= 2)
  for (const t of tarballs) ok(sh('npm', ['publish', '--dry-run', path.join(DIST, t)], { cwd: os.tmpdir() }), `npm publish --dry-run ${t}`)
})
