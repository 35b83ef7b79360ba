#!/usr/bin/env bash
# Installs what building and testing need, and only what is missing:
# the pinned Rust toolchain with the wasm target, the wasm-bindgen CLI
# matching Cargo.toml, the npm build tools (tools/package.json: binaryen's
# wasm-opt, esbuild, lightningcss; prebuilt), Debian's Chromium, the
# end-to-end npm packages and Debian's PostgreSQL server. With --dev, also
# cargo-leptos (never downloading tools itself) for scripts/dev.sh's live
# reload; the release build and the tests don't need it (scripts/build.sh).
# Scripts that build put tools/node_modules/.bin on PATH.
# Safe to run again: every step checks before it installs.
#   scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."

dev=no
case "${1:-}" in
  "") ;;
  --dev) dev=yes ;;
  *) echo "usage: scripts/setup.sh [--dev]" >&2; exit 2 ;;
esac

CARGO_LEPTOS_VERSION=0.3.11
# The CLI must equal the crate the app links, so read it from Cargo.toml.
WASM_BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = { version = "=\([0-9.]*\)".*/\1/p' Cargo.toml)
export PATH="$HOME/.cargo/bin:$PATH"
# The tools' own release profiles use fat LTO with one codegen unit, which
# leaves one of two cores idle for most of a build; a tool's speed doesn't
# matter here, its build time does.
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16

step() { printf '\n==> %s\n' "$*"; }
# One package list refresh per run, and none when nothing is missing.
apt_updated=no
apt_update_once() {
  if [ "$apt_updated" = no ]; then apt-get update -qq; apt_updated=yes; fi
}
have_version() { command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | grep -q "$2"; }

step "Rust toolchain and wasm32 target (rust-toolchain.toml)"
# Reads rust-toolchain.toml; a no-op when the pinned toolchain is present.
rustup toolchain install
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

if [ "$dev" = yes ]; then
  step "cargo-leptos $CARGO_LEPTOS_VERSION (for live reload)"
  if have_version cargo-leptos "$CARGO_LEPTOS_VERSION"; then echo "present"; else
    cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
  fi
fi

step "wasm-bindgen CLI $WASM_BINDGEN_VERSION"
if have_version wasm-bindgen "$WASM_BINDGEN_VERSION"; then echo "present"; else
  # --locked fails here: one of its locked dependencies is gone from the registry.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

step "npm build tools: wasm-opt, esbuild, lightningcss (tools/package-lock.json)"
# Prebuilt: seconds to install instead of 13 minutes of building binaryen
# from crates.io. Debian's binaryen 108 breaks hydration of release builds;
# 116 and later work, and the release-build browser tests run on this one.
if [ tools/node_modules/.package-lock.json -nt tools/package-lock.json ]; then echo "present"; else
  (cd tools && npm ci --no-audit --no-fund)
fi

step "Chromium from Debian"
if [ -x /usr/bin/chromium ]; then echo "present"; else
  apt_update_once
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi

step "PostgreSQL (Debian's postgresql, for the tests)"
# The tests run private clusters (scripts/lib/postgres.sh) from these
# binaries and never use the cluster Debian makes on install.
if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then echo "present"; else
  apt_update_once
  # The install starts that cluster where it can; in a container without an
  # init that may fail and fail the install, so forbid service starts for
  # it (101: not allowed), unless the machine has a policy of its own.
  own_policy=no
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    own_policy=yes
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  if [ "$own_policy" = yes ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
fi

step "end2end npm packages (npm ci from the committed lock file)"
# npm writes node_modules/.package-lock.json; newer than the lock means in sync.
if [ end2end/node_modules/.package-lock.json -nt end2end/package-lock.json ]; then echo "present"; else
  # Playwright drives Debian's Chromium; its own browser download can't succeed here.
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi
