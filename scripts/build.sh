#!/usr/bin/env bash
# The release build: the server binary (target/release/silent-refresh) and
# the site folder it serves (target/site), the same steps as
# `cargo leptos build --release`, run with tools that install in seconds
# (scripts/setup.sh) instead of cargo-leptos, which takes over 20 minutes
# to compile. cargo-leptos stays for scripts/dev.sh's live reload.
#
#   scripts/build.sh [--site-only]
#
# The steps: the browser half for wasm32 (the wasm-release profile), then
# wasm-bindgen, wasm-opt -Oz, the JS glue minified (esbuild), the style
# sheet minified and prefixed for Cargo.toml's browserquery (lightningcss,
# the library cargo-leptos uses), public/ copied in, and every file renamed
# name.<md5 in base64url>.ext with the names listed in hash.txt (cargo-leptos
# `hash-files`; src/assets.rs reads it). The new site replaces the old one
# only when complete.
set -euo pipefail
cd "$(dirname "$0")/.."

site_only=no
case "${1:-}" in
  "") ;;
  --site-only) site_only=yes ;;
  *) echo "usage: scripts/build.sh [--site-only]" >&2; exit 2 ;;
esac

scripts/setup.sh >/dev/null
# The pinned npm tools (tools/package.json) first, then cargo-installed ones.
export PATH="$PWD/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

# The settings cargo-leptos would read: Cargo.toml's [package.metadata.leptos].
leptos_setting() {
  sed -n '/^\[package\.metadata\.leptos\]/,/^\[/s/^'"$1"' = "\(.*\)"$/\1/p' Cargo.toml
}
name=$(leptos_setting output-name)
site_root=$(leptos_setting site-root)
pkg_dir=$(leptos_setting site-pkg-dir)
style_file=$(leptos_setting style-file)
assets_dir=$(leptos_setting assets-dir)
browserquery=$(leptos_setting browserquery)
wasm_profile=$(leptos_setting lib-profile-release)
# The variables cargo-leptos gives both builds; Leptos and src/assets.rs
# read these at compile time (the file names, and that they are hashed).
export LEPTOS_OUTPUT_NAME="$name" LEPTOS_SITE_ROOT="$site_root" LEPTOS_SITE_PKG_DIR="$pkg_dir" \
  LEPTOS_HASH_FILES=true LEPTOS_HASH_FILE_NAME=hash.txt
target_dir="${CARGO_TARGET_DIR:-target}"

printf '\n==> browser half (wasm32, profile %s)\n' "$wasm_profile"
# target/front: cargo-leptos's folder for this build, so scripts/dev.sh and
# this script share compiled dependencies.
cargo build --locked --lib --no-default-features --features hydrate \
  --target wasm32-unknown-unknown --profile "$wasm_profile" --target-dir "$target_dir/front"
wasm="$target_dir/front/wasm32-unknown-unknown/$wasm_profile/${name//-/_}.wasm"

printf '\n==> site files: wasm-bindgen, wasm-opt, minified JS and CSS, hashed names\n'
staging="$site_root.building"
rm -rf "$staging"
mkdir -p "$staging/$pkg_dir"
if [ -n "$assets_dir" ] && [ -d "$assets_dir" ]; then cp -R "$assets_dir/." "$staging/"; fi
pkg="$staging/$pkg_dir"
wasm-bindgen --target web --no-typescript --out-name "$name" --out-dir "$pkg" "$wasm"
# Leptos links NAME.wasm; wasm-bindgen writes NAME_bg.wasm.
mv "$pkg/${name}_bg.wasm" "$pkg/$name.wasm"
# cargo-leptos's flags: the features Rust's wasm32 target emits by default.
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int "$pkg/$name.wasm" -o "$pkg/$name.wasm"
esbuild "$pkg/$name.js" --minify --format=esm --log-level=warning --allow-overwrite --outfile="$pkg/$name.js"
lightningcss --minify --targets "$browserquery" "$style_file" -o "$pkg/$name.css"

# name.ext -> name.<hash>.ext, the hash as cargo-leptos makes it: MD5 of
# the final bytes, base64url without padding (22 characters).
: >"$staging/hash.txt"
for ext in js wasm css; do
  hash=$(node -e 'const fs = require("fs"), crypto = require("crypto");
    process.stdout.write(crypto.createHash("md5").update(fs.readFileSync(process.argv[1])).digest("base64url"))' \
    "$pkg/$name.$ext")
  mv "$pkg/$name.$ext" "$pkg/$name.$hash.$ext"
  printf '%s: %s\n' "$ext" "$hash" >>"$staging/hash.txt"
done
rm -rf "$site_root"
mv "$staging" "$site_root"
# Leptos looks for hash.txt beside the binary first (where cargo-leptos
# writes it): one there from an earlier build would name files this site
# no longer has, so it goes now, and comes back with the server below.
rm -f "$target_dir/release/hash.txt"
printf 'site: %s (%s)\n' "$site_root" "$(tr '\n' ' ' <"$site_root/hash.txt")"

if [ "$site_only" = yes ]; then exit 0; fi

printf '\n==> server (release)\n'
cargo build --locked --release --no-default-features --features ssr --bin "$name"
cp "$site_root/hash.txt" "$target_dir/release/hash.txt"
printf 'server: %s/release/%s\n' "$target_dir" "$name"
