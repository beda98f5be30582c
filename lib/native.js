'use strict'
// Loads the generated napi loader (../binding.js), which picks this platform's `.node` file:
// beside it in a clone, else from the platform package npm installed as an optional dependency.
// When neither loads, the error says which package to install and why it may be missing.

const { HoldfastError } = require('./errors.js')

/** The napi-rs platform name of this machine: `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`. */
function platformName() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : null
    return `linux-${arch}-${report && !report.header?.glibcVersionRuntime ? 'musl' : 'gnu'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

function loadError(cause) {
  const { name, version, optionalDependencies = {} } = require('../package.json')
  const pkg = `${name}-${platformName()}`
  let installed = false
  try {
    require.resolve(`${pkg}/package.json`)
    installed = true
  } catch {}
  if (installed) {
    return new HoldfastError(
      'ERR_HOLDFAST_NATIVE_LOAD',
      `${pkg} is installed but its binary failed to load: ${innermost(cause)}. Reinstall it, or build from source (npm run build in a clone).`,
      { cause },
    )
  }
  const known = Object.keys(optionalDependencies).filter((d) => d.startsWith(`${name}-`))
  if (known.length > 0 && !known.includes(pkg)) {
    return new HoldfastError(
      'ERR_HOLDFAST_NATIVE_MISSING',
      `holdfast has no prebuilt binary for ${platformName()} (prebuilt: ${known.map((d) => d.slice(name.length + 1)).join(', ')}); build it from source: git clone, npm install, npm run build.`,
      { cause },
    )
  }
  return new HoldfastError(
    'ERR_HOLDFAST_NATIVE_MISSING',
    `holdfast's native binary for ${platformName()} is not installed: install ${pkg}@${version} (npm install ${pkg}@${version}). ` +
      `npm installs it with holdfast as an optional dependency; it is missing when npm ran with --no-optional or --omit=optional, ` +
      `or when the lock file was made on another OS, CPU or libc (remove node_modules and package-lock.json, then npm install again).`,
    { cause },
  )
}

/** The deepest message: the loader's own wraps the real reason (ENOENT, a GLIBC_ version...). */
function innermost(err) {
  let e = err
  while (e && e.cause) e = Array.isArray(e.cause) ? e.cause[e.cause.length - 1] : e.cause
  return (e && e.message) || String(err)
}

function load() {
  try {
    return require('../binding.js')
  } catch (e) {
    throw loadError(e)
  }
}

module.exports = { load, platformName }
