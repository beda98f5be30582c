'use strict'
// Errors holdfast makes: each has a stable `code` (`ERR_HOLDFAST_...`).

const CODE_PREFIX = /^(ERR_HOLDFAST_[A-Z_]+): ([\s\S]*)$/

/**
 * An error from holdfast; `code` is stable (`ERR_HOLDFAST_...`). Bad arguments and payloads are
 * `TypeError`s (as Node's own are), and `instanceof HoldfastError` is true for them too: it holds
 * for every Error whose code is one of holdfast's.
 */
class HoldfastError extends Error {
  constructor(code, message, options) {
    super(message, options)
    this.name = 'HoldfastError'
    this.code = code
  }

  static [Symbol.hasInstance](value) {
    return value instanceof Error && typeof value.code === 'string' && value.code.startsWith('ERR_HOLDFAST_')
  }
}

function typeError(code, message) {
  const err = new TypeError(message)
  err.code = code
  return err
}

function invalidArgument(message) {
  return typeError('ERR_HOLDFAST_INVALID_ARGUMENT', message)
}

/** The native side sends `ERR_HOLDFAST_X: message`; move the code to where callers look. */
function fromNative(err) {
  const m = err && typeof err.message === 'string' ? CODE_PREFIX.exec(err.message) : null
  if (!m) return err
  return m[1] === 'ERR_HOLDFAST_INVALID_ARGUMENT' ? typeError(m[1], m[2]) : new HoldfastError(m[1], m[2])
}

function closedError(what) {
  return new HoldfastError('ERR_HOLDFAST_CLOSED', `this ${what} is closed; create a new one`)
}

module.exports = { HoldfastError, typeError, invalidArgument, fromNative, closedError }
