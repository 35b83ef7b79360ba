# shellcheck shell=bash
# Shared by bench.sh and soak.sh (sourced, not run): build the release
# server, site and load generator, and run the server on a free loopback port
# with a fresh database in a temporary folder, every setting explicit.
#
# After sourcing: $bin_dir, $work (removed on exit), $db, $port, $base,
# $access_secret, $refresh_secret, and start_server / stop_server.
# start_server takes the access-token lifetime; the secrets stay fixed for
# the whole run, so a restarted server finds the same keys.
#
# SQLite ($db) unless use_postgres NAME is called first: it starts a
# private PostgreSQL cluster (scripts/lib/postgres.sh) for the servers.
# start_peer / stop_peer run a second instance on the same database and
# secrets at $peer_base, with the same PUBLIC_ORIGIN as the first, as two
# instances behind one load balancer; its log is $work/peer.log.
# describe_database prints the engine, its durability settings and the
# filesystem under it. The servers serve the site folder $site_root (set it
# before start_server; default an empty folder in $work, so no site files).

build_release() {
  # The release server and site (scripts/build.sh), then the load generator.
  scripts/build.sh
  printf '==> building the load generator\n'
  cargo build --release --locked --features loadgen --bin loadgen
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Cargo puts binaries under CARGO_TARGET_DIR when it is set.
bin_dir="${CARGO_TARGET_DIR:-$PWD/target}/release"
work=$(mktemp -d)
db="$work/app.db"
database=sqlite
database_url="sqlite://$db?mode=rwc"
port=$(free_port)
base="http://127.0.0.1:$port"
access_secret="access secret $(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
refresh_secret="refresh secret $(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
site_root="$work/site"
server_pid=""
peer_port=""
peer_base=""
peer_pid=""

# spawn_instance PORT LOG ACCESS_TOKEN_TTL: starts an instance in the background;
# its pid is then in $spawned_pid.
spawn_instance() {
  mkdir -p "$work/site"
  # From the temporary folder, so no .env of the checkout leaks in. Logs at
  # warn: a log line per request would be part of what is measured.
  (
    cd "$work" || exit
    exec env \
      DATABASE_URL="$database_url" \
      LEPTOS_SITE_ADDR="127.0.0.1:$1" \
      LEPTOS_SITE_ROOT="$site_root" \
      LEPTOS_OUTPUT_NAME=silent-refresh \
      PUBLIC_ORIGIN="$base" \
      APP_ENV=development \
      JWT_ACCESS_SECRET="$access_secret" \
      REFRESH_TOKEN_SECRET="$refresh_secret" \
      ACCESS_TOKEN_TTL="$3" \
      REFRESH_REUSE_GRACE=10s \
      AUTH_RATE_PER_MINUTE=1000000 \
      RUST_LOG=warn \
      "$bin_dir/silent-refresh"
  ) >>"$work/$2" 2>&1 &
  spawned_pid=$!
}

wait_healthy() { # wait_healthy PID BASE LOG
  # Up to 60 s: migrations on a busy CI machine can be slow, and the first
  # start on a new site build writes its brotli-11 copies before listening
  # (the .wasm alone takes over 10 s on two busy cores).
  for _ in $(seq 1 1200); do
    curl -fsS "$2/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  echo "the server did not start; its log:" >&2
  tail -20 "$work/$3" >&2
  return 1
}

start_server() { # start_server ACCESS_TOKEN_TTL
  spawn_instance "$port" server.log "$1"
  server_pid=$spawned_pid
  wait_healthy "$server_pid" "$base" server.log
}

start_peer() { # start_peer ACCESS_TOKEN_TTL
  # Picked once, so a restarted peer comes back where it was.
  while [ -z "$peer_port" ] || [ "$peer_port" = "$port" ]; do peer_port=$(free_port); done
  peer_base="http://127.0.0.1:$peer_port"
  spawn_instance "$peer_port" peer.log "$1"
  peer_pid=$spawned_pid
  wait_healthy "$peer_pid" "$peer_base" peer.log
}

stop_instance() { # stop_instance PID
  if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
    kill -TERM "$1"
    wait "$1" 2>/dev/null || true
  fi
}

stop_server() {
  stop_instance "$server_pid"
  server_pid=""
}

stop_peer() {
  stop_instance "$peer_pid"
  peer_pid=""
}

trap 'stop_peer; stop_server; rm -rf "$work"' EXIT

use_postgres() { # use_postgres NAME
  # shellcheck source=lib/postgres.sh
  . scripts/lib/postgres.sh
  # Joins the EXIT trap above; the cluster stops before $work goes.
  pg_start_private "$1"
  # Newest first at exit: the servers stop before the cluster does.
  pg_at_exit 'stop_peer; stop_server'
  database=postgres
  database_url=$PG_URL
}

pg_sql() { # pg_sql STATEMENT: runs it on the private cluster, printing the rows
  "$PG_BIN_DIR/psql" -XAtq -v ON_ERROR_STOP=1 -d "$PG_URL" -c "$1"
}

# The postmaster's pid, for the bench's database CPU column.
pg_pid() {
  head -1 "$PG_DATA/postmaster.pid"
}

describe_database() {
  local folder
  if [ "$database" = postgres ]; then
    folder=$PG_DATA
    printf 'PostgreSQL %s, a private cluster on this machine over loopback TCP, fsync=%s, synchronous_commit=%s' \
      "$(pg_sql 'SHOW server_version;')" "$(pg_sql 'SHOW fsync;')" "$(pg_sql 'SHOW synchronous_commit;')"
  else
    folder=$work
    # What src/db/sqlite.rs sets on every connection.
    printf 'SQLite, a file read and written by the server itself, journal_mode=WAL, synchronous=NORMAL'
  fi
  printf '; data on %s (%s)\n' "$(df --output=fstype "$folder" | tail -1)" "$(df --output=source "$folder" | tail -1)"
}
