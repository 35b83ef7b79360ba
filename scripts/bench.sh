#!/usr/bin/env bash
# Measures what silent refresh costs (issue 5): every hot path against the
# bare /healthz floor of the same server in the same run, so the ratios
# survive a noisy machine. Builds the release server and the load generator,
# starts the server on a free loopback port with a fresh database, runs
# every scenario, prints one table, and stops the server.
#
#   scripts/bench.sh [--seconds N] [--markdown FILE] [--no-build]
#
# --seconds: measured seconds per scenario (default 8; the run takes about
# 12 times that). --markdown: also write the table there. --no-build: use
# the binaries already in target/release.
# The release .wasm is measured when target/site/pkg holds a release build
# (`cargo leptos build --release`); otherwise the size rows are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

seconds=8
markdown=()
build=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --markdown) markdown=(--markdown "$(realpath -m "$2")"); shift 2 ;;
    --no-build) build=no; shift ;;
    *) echo "usage: scripts/bench.sh [--seconds N] [--markdown FILE] [--no-build]" >&2; exit 2 ;;
  esac
done

if [ "$build" = yes ]; then
  printf '==> building the release server and the load generator\n'
  cargo build --release --locked --features ssr --bin silent-refresh
  cargo build --release --locked --features loadgen --bin loadgen
fi

root=$PWD
# Cargo puts binaries under CARGO_TARGET_DIR when it is set.
bin_dir="${CARGO_TARGET_DIR:-$root/target}/release"
work=$(mktemp -d)
server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
trap 'stop_server; rm -rf "$work"' EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
mkdir -p "$work/site"
# Run from the temporary folder so no .env of the checkout leaks in; every
# setting the figures depend on is explicit. Logs at warn: a log line per
# request would be part of what we measure.
(
  cd "$work"
  exec env \
    DATABASE_URL="sqlite://$work/app.db?mode=rwc" \
    LEPTOS_SITE_ADDR="127.0.0.1:$port" \
    LEPTOS_SITE_ROOT="$work/site" \
    LEPTOS_OUTPUT_NAME=silent-refresh \
    PUBLIC_ORIGIN="$base" \
    APP_ENV=development \
    JWT_ACCESS_SECRET="bench access secret $(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" \
    REFRESH_TOKEN_SECRET="bench refresh secret $(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" \
    ACCESS_TOKEN_TTL=15m \
    REFRESH_REUSE_GRACE=10s \
    AUTH_RATE_PER_MINUTE=1000000 \
    RUST_LOG=warn \
    "$bin_dir/silent-refresh"
) >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
printf '==> benchmark on %s cores (%s), %s, %s MiB RAM, load average %s;\n    server and load generator share the machine\n' \
  "$(nproc)" "$cpu" "$(uname -sr)" "$(( $(grep MemTotal /proc/meminfo | awk '{print $2}') / 1024 ))" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"

# The size rows measure the site build in target/site/pkg; the load
# generator skips them, and says so, when that is a debug build.
pkg=()
if [ -f target/site/pkg/silent-refresh.wasm ]; then
  pkg=(--pkg-dir target/site/pkg)
else
  printf '    note: no target/site/pkg; run `cargo leptos build --release` for the size rows\n'
fi

status=0
"$bin_dir/loadgen" bench --base "$base" --seconds "$seconds" --server-pid "$server_pid" "${pkg[@]}" "${markdown[@]}" || status=$?
stop_server
if grep -qiE 'panic|error' "$work/server.log"; then
  printf '\nserver log (errors):\n' >&2
  grep -iE 'panic|error' "$work/server.log" | head -20 >&2
fi
case "$status" in
  0) printf '\nbench: every target met\n' ;;
  1) printf '\nbench: finished; some targets missed (see the table)\n' ;;
  *) printf '\nbench: failed\n' >&2; exit "$status" ;;
esac
