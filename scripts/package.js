#!/usr/bin/env node
// `npm run package`: the npm tarballs a release publishes, written to dist/:
//   holdfast-<version>.tgz             the JavaScript package: no binary, an optionalDependency
//                                      on the platform package of every target in napi.targets
//   holdfast-<platform>-<version>.tgz  one per binary: the `.node` file for that platform
//
//   node scripts/package.js             build this machine's release binary, then pack
//   node scripts/package.js --cross     on linux-x64: also build linux-arm64-gnu and linux-x64-musl
//   node scripts/package.js --no-build  pack the holdfast.*.node files already in the root
//                                       (the release workflow downloads them from its build jobs)
//
// Linux glibc binaries are built with cargo-zigbuild against glibc 2.17, so they load on every
// distribution Node 18+ supports (the napi-rs convention); musl ones with it too. zig comes from
// PyPI: `pip install ziglang cargo-zigbuild`.
'use strict'

const { execFileSync, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const ROOT = path.resolve(__dirname, '..')
const DIST = path.join(ROOT, 'dist')
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))

const ARCH = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm' }

/** napi-rs's platform name of a Rust target: `x86_64-unknown-linux-gnu` -> `linux-x64-gnu`. */
function platformOf(triple) {
  const [arch, , sys, abi] = triple.split('-')
  const cpu = ARCH[arch]
  if (!cpu) throw new Error(`unknown architecture in ${triple}`)
  if (triple.includes('-apple-darwin')) return `darwin-${cpu}`
  if (triple.includes('-windows-')) return `win32-${cpu}-${abi}`
  if (sys === 'linux') return `linux-${cpu}-${abi}`
  throw new Error(`no platform name for ${triple}`)
}

function run(cmd, args, opts = {}) {
  console.log(`$ ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', shell: process.platform === 'win32', ...opts })
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.error ? r.error.message : `exit code ${r.status}`})`)
  }
}

function hasZig() {
  for (const [cmd, args] of [['zig', ['version']], ['python3', ['-m', 'ziglang', 'version']]]) {
    if (spawnSync(cmd, args, { stdio: 'ignore' }).status === 0) return true
  }
  return false
}

/** The release builds: this machine's binary, plus the Linux cross targets with --cross. */
function build(cross) {
  const napi = [path.join(ROOT, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js'), 'build', '--platform', '--release']
  const linuxX64 = process.platform === 'linux' && process.arch === 'x64'
  if (!linuxX64) {
    if (cross) throw new Error('--cross builds the Linux targets from a linux-x64 host only')
    run(process.execPath, [...napi, '--js', 'binding.js', '--dts', 'binding.d.ts'])
    return
  }
  if (!hasZig()) {
    throw new Error('Linux release binaries are built with cargo-zigbuild for glibc 2.17: pip install ziglang cargo-zigbuild')
  }
  const targets = ['x86_64-unknown-linux-gnu.2.17']
  if (cross) targets.push('aarch64-unknown-linux-gnu.2.17', 'x86_64-unknown-linux-musl')
  for (const [i, target] of targets.entries()) {
    // the loader and its types are the same for every target: written once (a build without the
    // loader writes types without the loader's export, so those go to target/, unused)
    const outputs = i === 0 ? ['--js', 'binding.js', '--dts', 'binding.d.ts'] : ['--no-js', '--dts', 'target/cross-binding.d.ts']
    run(process.execPath, [...napi, ...outputs, '--target', target, '-x'])
  }
}

/** `npm pack` of a staged folder into dist/; returns the tarball's path. */
function pack(dir) {
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', DIST], {
    cwd: dir,
    encoding: 'utf8',
    shell: process.platform === 'win32',
  })
  const [{ filename, files }] = JSON.parse(out)
  return { tarball: path.join(DIST, filename), files: files.map((f) => f.path) }
}

function stage(name) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`))
}

function packPlatform(platform) {
  const template = path.join(ROOT, 'npm', platform)
  if (!fs.existsSync(path.join(template, 'package.json'))) throw new Error(`npm/${platform}/package.json is missing`)
  const binary = `${pkg.napi.binaryName}.${platform}.node`
  const dir = stage(`${pkg.name}-${platform}`)
  const manifest = JSON.parse(fs.readFileSync(path.join(template, 'package.json'), 'utf8'))
  Object.assign(manifest, { version: pkg.version, license: pkg.license, repository: pkg.repository })
  if (manifest.main !== binary) throw new Error(`npm/${platform}/package.json: main must be ${binary}`)
  fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  fs.copyFileSync(path.join(template, 'README.md'), path.join(dir, 'README.md'))
  fs.copyFileSync(path.join(ROOT, 'LICENSE'), path.join(dir, 'LICENSE'))
  fs.copyFileSync(path.join(ROOT, binary), path.join(dir, binary))
  const result = pack(dir)
  if (!result.files.includes(binary)) throw new Error(`${result.tarball} does not hold ${binary}`)
  fs.rmSync(dir, { recursive: true, force: true })
  return result.tarball
}

function packMain(platforms) {
  const dir = stage(pkg.name)
  const manifest = { ...pkg }
  for (const key of ['devDependencies', 'overrides', 'scripts']) delete manifest[key]
  manifest.optionalDependencies = Object.fromEntries(platforms.map((p) => [`${pkg.name}-${p}`, pkg.version]))
  fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  for (const entry of [...pkg.files, 'README.md', 'LICENSE']) {
    fs.cpSync(path.join(ROOT, entry), path.join(dir, entry), { recursive: true })
  }
  const result = pack(dir)
  const binaries = result.files.filter((f) => f.endsWith('.node'))
  if (binaries.length > 0) throw new Error(`${result.tarball} must hold no binary, holds ${binaries.join(', ')}`)
  fs.rmSync(dir, { recursive: true, force: true })
  return result.tarball
}

function main() {
  const args = new Set(process.argv.slice(2))
  if (args.has('--refuse-publish')) {
    // `npm publish` in the repository would publish a package with no binary and no
    // optionalDependencies: the release publishes dist/'s tarballs instead.
    console.error('publish the tarballs `npm run package` writes to dist/ (platform packages first), not this folder')
    process.exit(1)
  }
  if (!args.has('--no-build')) build(args.has('--cross'))

  const platforms = pkg.napi.targets.map(platformOf)
  const built = platforms.filter((p) => fs.existsSync(path.join(ROOT, `${pkg.napi.binaryName}.${p}.node`)))
  if (built.length === 0) throw new Error(`no ${pkg.napi.binaryName}.<platform>.node in ${ROOT}: build one first`)

  fs.mkdirSync(DIST, { recursive: true })
  for (const f of fs.readdirSync(DIST)) {
    if (f.startsWith(`${pkg.name}-`) && f.endsWith(`-${pkg.version}.tgz`) || f === `${pkg.name}-${pkg.version}.tgz`) {
      fs.rmSync(path.join(DIST, f))
    }
  }
  const tarballs = [...built.map(packPlatform), packMain(platforms)]
  for (const t of tarballs) console.log(`${path.relative(ROOT, t)}  ${(fs.statSync(t).size / 1024).toFixed(0)} KiB`)
}

if (require.main === module) {
  try {
    main()
  } catch (e) {
    console.error(`npm run package: ${e.message}`)
    process.exit(1)
  }
}

module.exports = { platformOf }
