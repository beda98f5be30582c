'use strict'
/** The installed version of an npm package, or null when it is not installed. */
module.exports = function version(pkg) {
  try {
    return require(`${pkg}/package.json`).version
  } catch {
    return null
  }
}
