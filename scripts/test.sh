#!/usr/bin/env bash
# Sets up what is missing, then runs every test: unit and integration tests
# (cargo), the Playwright browser tests against the release build, and a
# one-minute soak with a crash and a graceful stop (scripts/soak.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The pinned wasm-opt (tools/package.json) first, then cargo-installed tools.
export PATH="$PWD/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

printf '\n==> unit and integration tests\n'
cargo test --locked --features ssr

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
