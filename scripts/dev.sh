#!/usr/bin/env bash
# Sets up what is missing, then runs the app with live reload on
# http://127.0.0.1:3000 (SQLite in data/, development secrets generated there).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
# The pinned wasm-opt (tools/package.json) first, then cargo-installed tools.
export PATH="$PWD/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# Hashed file names (Cargo.toml's hash-files) are for release builds: watch
# rebuilds keep the plain names, so pages would go on linking the first
# build's files.
export LEPTOS_HASH_FILES=false
exec cargo leptos watch "$@"
