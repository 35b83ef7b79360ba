#!/usr/bin/env bash
# Measures what silent refresh costs: every hot path against the bare
# /healthz floor of the same server in the same run, so the ratios survive a
# noisy machine. Builds the release server and the load generator, starts
# the server on a free loopback port with a fresh database and the site
# build, runs every scenario, weighs a first visit to /login, and prints the
# scenarios and the performance issue's targets (refresh and /api/me
# against the floor, server CPU per refresh, refresh errors, the first
# visit's bytes and the release .wasm's brotli size), each with its verdict,
# then stops the server. The soak's target is scripts/soak.sh's.
#
#   scripts/bench.sh [--database sqlite|postgres] [--seconds N] [--markdown FILE] [--no-build]
#
# --database: sqlite (the default) is a file in a temporary folder;
# postgres is a private cluster (scripts/lib/postgres.sh) on a temporary
# folder and a free loopback port, durability at PostgreSQL's defaults,
# with its CPU time per request in a column of its own. Either way the
# table says which engine ran, its durability settings and the filesystem,
# and the targets are that engine's.
# --seconds: measured seconds per scenario (default 8; the run then takes
# about four minutes). --markdown: also write the table there. --no-build: use
# the binaries already built ($CARGO_TARGET_DIR/release, default target/release).
# The site build (scripts/build.sh) is target/site, or
# $LEPTOS_SITE_ROOT: the server serves it for the first visit, and its .wasm
# is measured; without one, those two rows are not measured.
set -euo pipefail
cd "$(dirname "$0")/.."
# The pinned wasm-opt (tools/package.json) first, then cargo-installed tools.
export PATH="$PWD/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

seconds=8
markdown=()
build=yes
engine=sqlite
usage="usage: scripts/bench.sh [--database sqlite|postgres] [--seconds N] [--markdown FILE] [--no-build]"
while [ $# -gt 0 ]; do
  case "$1" in
    --database)
      case "${2:-}" in
        sqlite | postgres) engine="$2"; shift 2 ;;
        *) echo "$usage" >&2; exit 2 ;;
      esac ;;
    --seconds) seconds="$2"; shift 2 ;;
    --markdown) markdown=(--markdown "$(realpath -m "$2")"); shift 2 ;;
    --no-build) build=no; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done

# shellcheck source=lib/server.sh
. scripts/lib/server.sh
if [ "$build" = yes ]; then build_release; fi
db_pid=()
if [ "$engine" = postgres ]; then
  use_postgres bench
  db_pid=(--db-pid "$(pg_pid)")
fi
# The site the server serves: the first visit to /login fetches its files.
site=$(realpath -m "${LEPTOS_SITE_ROOT:-target/site}")
pkg=()
if compgen -G "$site/pkg/*.wasm" >/dev/null; then
  # shellcheck disable=SC2034 # read by scripts/lib/server.sh
  site_root=$site
  pkg=(--pkg-dir "$site/pkg")
fi
start_server 15m
database_info=$(describe_database)

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
sharing="server and load generator share"
if [ "$engine" = postgres ]; then sharing="server, PostgreSQL and load generator share"; fi
printf '==> benchmark on %s cores (%s), %s, %s MiB RAM, load average %s;\n    %s the machine\n' \
  "$(nproc)" "$cpu" "$(uname -sr)" "$(( $(grep MemTotal /proc/meminfo | awk '{print $2}') / 1024 ))" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" "$sharing"
printf '    database: %s\n' "$database_info"

if [ ${#pkg[@]} -eq 0 ]; then
  # shellcheck disable=SC2016 # the backquotes are text
  printf '    note: no site build in %s; run scripts/build.sh for the first-visit and .wasm rows\n' "$site"
else
  printf '    site: %s\n' "$site"
fi

status=0
"$bin_dir/loadgen" bench --base "$base" --database "$engine" --seconds "$seconds" --server-pid "$server_pid" "${db_pid[@]}" \
  --database-info "$database_info" "${pkg[@]}" "${markdown[@]}" || status=$?
stop_server
if grep -qiE 'panic|error' "$work/server.log"; then
  printf '\nserver log (errors):\n' >&2
  grep -iE 'panic|error' "$work/server.log" | head -20 >&2
fi
case "$status" in
  0) printf '\nbench: every target met\n' ;;
  1) printf '\nbench: finished; some targets missed or not measured (see the table)\n' ;;
  *) printf '\nbench: failed\n' >&2; exit "$status" ;;
esac
