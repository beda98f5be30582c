#!/usr/bin/env bash
# `npm test`: lint, build the addon, then every test against real redis-servers the tests start
# themselves on free ports (set REDIS_URL to use an external server where a test allows it), and
# the JS tests again against Redis 6.2 and Valkey 8.1 (scripts/servers.sh fetches them).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
step "build the addon (debug; writes the generated binding.js / binding.d.ts)"
npm run build:debug
if ! git diff --quiet -- binding.js binding.d.ts; then
  git --no-pager diff --stat -- binding.js binding.d.ts
  echo "the generated binding.js / binding.d.ts differ from the committed ones: commit what napi build wrote" >&2
  exit 1
fi
step "Rust tests (crates/core/tests, against redis-server)"
cargo test --workspace
step "TypeScript type test (tsc --strict --noEmit)"
npx tsc -p __test__/types
step "benchmark smoke run (BENCH_N=200: checks counts, not timings)"
BENCH_N=200 BENCH_RESULTS="$(mktemp -d)/results.json" node benchmark/bench.js
step "deployments benchmark smoke run (TLS, cluster, durable adds; counts, not timings)"
BENCH_N=200 BENCH_SERIAL_N=5 node benchmark/deployments.js >/dev/null
step "cost and idle benchmark smoke runs (holdfast only; every job must run)"
BENCH_PEERS=holdfast,holdfast-list BENCH_COST_SCALE=0.01 BENCH_COST_ROUNDS=1 node benchmark/cost.js >/dev/null
BENCH_PEERS=holdfast,holdfast-list BENCH_IDLE_QUEUES=2 BENCH_IDLE_SETTLE_MS=500 BENCH_IDLE_WINDOW_MS=1000 node benchmark/idle.js >/dev/null
step "delayed-job lateness smoke run (busy, under load, resting, retries: every job must start)"
BENCH_N=5 BENCH_IDLE_N=2 BENCH_REST_MS=200 node benchmark/delayed-lateness.js >/dev/null
step "crash recovery benchmark smoke run (holdfast only, one round: checks every job is recovered)"
RECOVERY_PEERS=holdfast-stream,holdfast-list RECOVERY_ROUNDS=1 node benchmark/recovery.js
# The release tarballs that __test__/package.test.js installs. On linux-x64 they are built with
# cargo-zigbuild for glibc 2.17 (zig from PyPI), plus linux-arm64-gnu and linux-x64-musl when
# rustup can add those targets; CI must build all three.
cross=""
if [[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]]; then
  if ! command -v cargo-zigbuild >/dev/null 2>&1 || ! { zig version || python3 -m ziglang version; } >/dev/null 2>&1; then
    step "pip install ziglang cargo-zigbuild (release builds for glibc 2.17)"
    python3 -m pip install --quiet --disable-pip-version-check ziglang==0.14.1 cargo-zigbuild==0.24.1
  fi
  cross="--cross"
  for target in aarch64-unknown-linux-gnu x86_64-unknown-linux-musl; do
    rustup target list --installed 2>/dev/null | grep -qx "$target" && continue
    if ! rustup target add "$target"; then
      [[ -n "${CI:-}" ]] && { echo "CI: rustup target add $target failed" >&2; exit 1; }
      echo "note: no $target target: building this platform's package only" >&2
      cross=""
    fi
  done
fi
step "npm run package ${cross} (release binaries, tarballs in dist/)"
npm run package -- ${cross}
if ! git diff --quiet -- binding.js binding.d.ts; then
  echo "npm run package changed the generated binding.js / binding.d.ts" >&2
  exit 1
fi
step "JS tests (node --test __test__/)"
# a hard limit too: a test process that never exits must fail the run, not hang it
timeout 1200 node --test --test-timeout=180000 __test__/
# The server matrix: the same tests (but packaging, which no server affects) against Redis 6.2
# and Valkey 8.1; the run above used the redis-server on PATH (Redis 7.0 here).
servers="$(bash scripts/servers.sh)"
for server in $(tr ' ' '=' <<<"$servers"); do
  step "JS tests against ${server%%=*} (${server#*=})"
  REDIS_SERVER_BIN="${server#*=}" REDIS_URL="" timeout 1200 node --test --test-timeout=180000 \
    $(ls __test__/*.test.js | grep -v '/package.test.js$')
done
