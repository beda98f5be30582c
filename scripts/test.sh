#!/usr/bin/env bash
# `npm test`: lint, build the addon, then every test against real redis-servers the tests start
# themselves on free ports (set REDIS_URL to use an external server where a test allows it).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
step "build the addon (napi build --platform)"
npx napi build --platform
step "Rust tests (crates/core/tests, against redis-server)"
cargo test --workspace
step "TypeScript type test (tsc --strict --noEmit)"
npx tsc -p __test__/types
step "benchmark smoke run (BENCH_N=200: checks counts, not timings)"
BENCH_N=200 BENCH_RESULTS="$(mktemp -d)/results.json" node benchmark/bench.js
step "JS tests (node --test __test__/)"
# a hard limit too: a test process that never exits must fail the run, not hang it
timeout 1200 node --test --test-timeout=180000 __test__/
