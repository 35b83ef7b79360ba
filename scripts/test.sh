#!/usr/bin/env bash
# Sets up what is missing, then runs every test: unit and integration tests
# (cargo, on SQLite, then the engine-neutral ones again on a private
# PostgreSQL cluster, scripts/lib/postgres.sh), the Playwright browser tests
# against the release build, a one-minute soak with a crash and a graceful
# stop (scripts/soak.sh), and a shorter one with two instances on one
# private PostgreSQL cluster, one of them SIGKILLed mid-load.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The pinned wasm-opt (tools/package.json) first, then cargo-installed tools.
export PATH="$PWD/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

printf '\n==> unit and integration tests\n'
cargo test --locked --features ssr

printf '\n==> the same integration tests on PostgreSQL (a private cluster)\n'
# The engine-neutral integration tests: the harness in tests/common picks
# PostgreSQL when TEST_POSTGRES_URL is set and makes a fresh schema for
# each test.
pg_tests=(--test account --test auth_api --test history --test remember --test hostile_input --test housekeeping --test page_forms --test throttle_limits)
# shellcheck source=lib/postgres.sh
. scripts/lib/postgres.sh
pg_start_private tests
# Outage tests start clusters of their own from the same binaries.
export TEST_PG_BIN_DIR="$PG_BIN_DIR"
TEST_POSTGRES_URL="$PG_URL" cargo test --locked --features ssr "${pg_tests[@]}"
# Stopped on exit anyway; stopping now frees the machine for the soak.
pg_stop_private "$PG_DATA"

printf '\n==> browser tests (release build, fresh database, short-lived access tokens)\n'
scripts/build.sh
rm -rf target/e2e
mkdir -p target/e2e
site_addr="127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# The server as cargo-leptos's end-to-end would run it, its log in
# target/e2e/server.log (printed if a test fails). Every test registers and
# logs in from 127.0.0.1, hence the high rate.
DATABASE_URL="sqlite://target/e2e/app.db?mode=rwc" \
LEPTOS_SITE_ADDR="$site_addr" \
LEPTOS_SITE_ROOT=target/site \
ACCESS_TOKEN_TTL="${E2E_ACCESS_TOKEN_TTL:-6s}" \
AUTH_RATE_PER_MINUTE=10000 \
RUST_LOG="${RUST_LOG:-info}" \
  "${CARGO_TARGET_DIR:-target}/release/silent-refresh" >target/e2e/server.log 2>&1 &
server_pid=$!
# Joins the cleanup list of scripts/lib/postgres.sh (a trap would replace it).
pg_at_exit "kill $server_pid 2>/dev/null || true"
# Up to a minute: the first start on a new site writes its brotli-11 copies.
healthy=no
for _ in $(seq 1 600); do
  if curl -fsS "http://$site_addr/healthz" >/dev/null 2>&1; then healthy=yes; break; fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ "$healthy" = no ]; then
  cat target/e2e/server.log
  echo "the server did not become healthy at http://$site_addr" >&2
  exit 1
fi
if ! (cd end2end && LEPTOS_SITE_ADDR="$site_addr" npx playwright test); then
  printf '\n==> the server log (target/e2e/server.log), last 200 lines\n'
  tail -n 200 target/e2e/server.log
  exit 1
fi
kill "$server_pid"
wait "$server_pid" || true

printf '\n==> soak, crash and drain on loopback (the release server built above)\n'
cargo build --release --locked --features loadgen --bin loadgen
scripts/soak.sh --no-build

printf '\n==> soak, crash and drain with two instances on one PostgreSQL (about 70 s)\n'
scripts/soak.sh --database postgres --no-build --duration 20 --crash-duration 15
