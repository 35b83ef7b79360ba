# Shared by bench.sh and soak.sh (sourced, not run): build the release
# server and load generator, and run the server on a free loopback port
# with a fresh database in a temporary folder, every setting explicit.
#
# After sourcing: $bin_dir, $work (removed on exit), $db, $port, $base,
# $access_secret, $refresh_secret, and start_server / stop_server.
# start_server takes the access-token lifetime; the secrets stay fixed for
# the whole run, so a restarted server finds the same keys.

build_release() {
  printf '==> building the release server and the load generator\n'
  cargo build --release --locked --features ssr --bin silent-refresh
  cargo build --release --locked --features loadgen --bin loadgen
}

# Cargo puts binaries under CARGO_TARGET_DIR when it is set.
bin_dir="${CARGO_TARGET_DIR:-$PWD/target}/release"
work=$(mktemp -d)
db="$work/app.db"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
access_secret="access secret $(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
refresh_secret="refresh secret $(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
server_pid=""

start_server() { # start_server ACCESS_TOKEN_TTL
  mkdir -p "$work/site"
  # From the temporary folder, so no .env of the checkout leaks in. Logs at
  # warn: a log line per request would be part of what is measured.
  (
    cd "$work"
    exec env \
      DATABASE_URL="sqlite://$db?mode=rwc" \
      LEPTOS_SITE_ADDR="127.0.0.1:$port" \
      LEPTOS_SITE_ROOT="$work/site" \
      LEPTOS_OUTPUT_NAME=silent-refresh \
      PUBLIC_ORIGIN="$base" \
      APP_ENV=development \
      JWT_ACCESS_SECRET="$access_secret" \
      REFRESH_TOKEN_SECRET="$refresh_secret" \
      ACCESS_TOKEN_TTL="$1" \
      REFRESH_REUSE_GRACE=10s \
      AUTH_RATE_PER_MINUTE=1000000 \
      RUST_LOG=warn \
      "$bin_dir/silent-refresh"
  ) >>"$work/server.log" 2>&1 &
  server_pid=$!
  # Up to 10 s: migrations on a busy CI machine can be slow.
  for _ in $(seq 1 200); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "the server did not start; its log:" >&2
  tail -20 "$work/server.log" >&2
  return 1
}

stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}

trap 'stop_server; rm -rf "$work"' EXIT
