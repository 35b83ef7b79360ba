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
pg_tests=(--test auth_api --test hostile_input --test housekeeping --test page_forms --test throttle_limits)
# shellcheck source=lib/postgres.sh
. scripts/lib/postgres.sh
pg_start_private tests
# Outage tests start clusters of their own from the same binaries.
export TEST_PG_BIN_DIR="$PG_BIN_DIR"
TEST_POSTGRES_URL="$PG_URL" cargo test --locked --features ssr "${pg_tests[@]}"
# Stopped on exit anyway; stopping now frees the machine for the soak.
pg_stop_private "$PG_DATA"

printf '\n==> browser tests (release build, fresh database, short-lived access tokens)\n'
rm -rf target/e2e
# Every test registers and logs in from 127.0.0.1, hence the high rate.
DATABASE_URL="sqlite://target/e2e/app.db?mode=rwc" \
ACCESS_TOKEN_TTL="${E2E_ACCESS_TOKEN_TTL:-6s}" \
AUTH_RATE_PER_MINUTE=10000 \
RUST_LOG="${RUST_LOG:-info}" \
  cargo leptos end-to-end --release

printf '\n==> soak, crash and drain on loopback (the release server built above)\n'
cargo build --release --locked --features loadgen --bin loadgen
scripts/soak.sh --no-build

printf '\n==> soak, crash and drain with two instances on one PostgreSQL (about 70 s)\n'
scripts/soak.sh --database postgres --no-build --duration 20 --crash-duration 15
