#!/usr/bin/env node
'use strict'
// The `holdfast` command (lib/cli.js).

require('../lib/cli.js')
  .main(process.argv.slice(2))
  .then((code) => {
    process.exitCode = code
  })
