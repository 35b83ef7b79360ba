#!/usr/bin/env bash
# Reliability under load (issue 6), on loopback only, bounded in time:
#   1. soak:  200 tabs (some in pairs sharing one cookie jar) sign in, call
#             protected routes and refresh with 2-second access tokens.
#             No spurious logout, no 5xx, no SQLITE_BUSY reaching a client.
#   2. crash: SIGKILL the server mid-load, check the database, restart it on
#             the same database and secrets; every household that had a
#             token response goes on refreshing, nobody is logged out.
#   3. drain: SIGTERM with logins in flight; every one gets its answer and
#             the server exits 0.
#
#   scripts/soak.sh [--database sqlite|postgres] [--duration SECS] [--users N]
#                   [--crash-duration SECS] [--no-build]
#
# --database postgres: the same on a private PostgreSQL cluster
# (scripts/lib/postgres.sh) with two server instances sharing it and the
# load taking turns between them (a refused connection goes to the other,
# as a load balancer would send it). The crash SIGKILLs one instance and
# leaves it down until the load is over: every household that had a token
# response goes on refreshing and calling protected routes on the survivor
# alone, nobody is logged out, and only the requests the killed instance
# had in flight are lost. The database check is the rotation one (the
# SQLite file checks have no PostgreSQL counterpart: the server keeps
# its own files consistent). SQLite, one instance, is the default.
#
# Defaults fit CI (about 2 minutes after the build); a long soak by hand:
#   scripts/soak.sh --duration 900
# Prints PASS/FAIL lines and ends with `soak: N passed, M failed`; exits
# non-zero when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

duration=60
users=200
crash_duration=20
build=yes
engine=sqlite
usage="usage: scripts/soak.sh [--database sqlite|postgres] [--duration SECS] [--users N] [--crash-duration SECS] [--no-build]"
while [ $# -gt 0 ]; do
  case "$1" in
    --database)
      case "${2:-}" in
        sqlite | postgres) engine="$2"; shift 2 ;;
        *) echo "$usage" >&2; exit 2 ;;
      esac ;;
    --duration) duration="$2"; shift 2 ;;
    --users) users="$2"; shift 2 ;;
    --crash-duration) crash_duration="$2"; shift 2 ;;
    --no-build) build=no; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
pairs=$(( users / 10 ))

# shellcheck source=lib/server.sh
. scripts/lib/server.sh
if [ "$build" = yes ]; then build_release; fi
if [ "$engine" = postgres ]; then use_postgres soak; fi
loadgen="$bin_dir/loadgen"

passed=0
failed=0
check() { # check NAME CONDITION-EXIT-CODE
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "  PASS $1"
  else failed=$((failed + 1)); echo "  FAIL $1"; fi
}
# Counts the PASS/FAIL lines a loadgen run printed.
count_lines() {
  passed=$((passed + $(grep -c '^  PASS' "$1" || true)))
  failed=$((failed + $(grep -c '^  FAIL' "$1" || true)))
}

sql() { # sql STATEMENT: runs it on the database, printing the rows
  if [ "$database" = postgres ]; then
    pg_sql "$1"
  elif command -v sqlite3 >/dev/null; then
    sqlite3 "$db" "$1"
  else
    python3 -c 'import sqlite3, sys
for row in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print("|".join(map(str, row)))' "$db" "$1"
  fi
}
# A rotation is all or nothing: a used token of a live session has its
# successor (one at most: `parent_id` is unique), every successor's parent
# is marked used, and every live session has exactly one unused token.
check_database() { # check_database WHEN
  local half
  if [ "$database" = sqlite ]; then
    check "integrity_check ok $1" "$([ "$(sql 'PRAGMA integrity_check;')" = ok ]; echo $?)"
    check "no foreign key violations $1" "$([ -z "$(sql 'PRAGMA foreign_key_check;')" ]; echo $?)"
  fi
  half=$(sql "SELECT
      (SELECT count(*) FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
         WHERE s.revoked_at IS NULL AND t.used_at IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM refresh_tokens c WHERE c.parent_id = t.id))
    + (SELECT count(*) FROM refresh_tokens c JOIN refresh_tokens p ON p.id = c.parent_id
         WHERE p.used_at IS NULL)
    + (SELECT count(*) FROM sessions s WHERE s.revoked_at IS NULL
         AND (SELECT count(*) FROM refresh_tokens t WHERE t.session_id = s.id AND t.used_at IS NULL) <> 1);")
  check "no half-applied rotation $1 ($half found)" "$([ "$half" = 0 ]; echo $?)"
}

# One instance on SQLite; two sharing the database on PostgreSQL, the load
# given both addresses.
start_instances() { # start_instances ACCESS_TOKEN_TTL
  start_server "$1"
  targets=(--base "$base")
  if [ "$database" = postgres ]; then
    start_peer "$1"
    targets+=(--peer "$peer_base")
  fi
}
logs=("$work/server.log")
instances=""
if [ "$database" = postgres ]; then
  logs+=("$work/peer.log")
  instances=", 2 instances"
fi

printf '==> machine: %s cores (%s), %s\n' "$(nproc)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" "$(uname -sr)"
if [ "$database" = postgres ]; then printf '==> database: %s\n' "$(describe_database)"; fi

printf '\n==> soak: %s tabs (%s pairs sharing a jar), %s s, ACCESS_TOKEN_TTL=2s%s\n' "$users" "$pairs" "$duration" "$instances"
start_instances 2s
"$loadgen" soak "${targets[@]}" --duration "$duration" --users "$users" --pairs "$pairs" \
  --server-pid "$server_pid" | tee "$work/soak.out" || true
count_lines "$work/soak.out"
stop_peer
stop_server
check_database "after the soak"

if [ "$database" = postgres ]; then
  printf '\n==> crash: SIGKILL one of 2 instances mid-load; the other carries on alone\n'
else
  printf '\n==> crash: SIGKILL mid-load, restart on the same database\n'
fi
start_instances 2s
crash_users=$(( users / 2 ))
"$loadgen" soak "${targets[@]}" --duration "$crash_duration" --users "$crash_users" \
  --pairs $(( crash_users / 10 )) --outage-tolerant >"$work/crash.out" 2>"$work/crash.err" &
load_pid=$!
# Kill in the middle of the load, once the tabs are running.
for _ in $(seq 1 600); do
  grep -q 'tabs in' "$work/crash.err" 2>/dev/null && break
  sleep 0.1
done
sleep $(( crash_duration / 2 ))
kill -KILL "$server_pid"
wait "$server_pid" 2>/dev/null || true
killed_at=$(date +%s.%N)
server_pid=""
check_database "right after SIGKILL"
down_for() { # down_for WHAT: how long since the kill
  awk -v from="$killed_at" -v to="$(date +%s.%N)" -v what="$1" \
    'BEGIN { printf "  %s down for %.2f s", what, to - from }'
}
if [ "$database" = sqlite ]; then
  start_server 2s
  down_for server
  printf ' (the grace window is 10 s)\n'
fi
wait "$load_pid" || true
if [ "$database" = postgres ]; then
  # The killed instance comes back only now: the rest of the load and the
  # final check (every household refreshes and calls /api/me) had the
  # survivor alone.
  check "the surviving instance is still up" "$(curl -fsS "$peer_base/healthz" >/dev/null 2>&1; echo $?)"
  start_server 2s
  down_for "the killed instance was"
  printf ', until the load and its final check were over\n'
fi
cat "$work/crash.err" >&2
cat "$work/crash.out"
count_lines "$work/crash.out"

printf '\n==> drain: SIGTERM with logins in flight\n'
rm -f "$work/ready" "$work/signalled"
"$loadgen" drain --base "$base" --ready-file "$work/ready" --signalled-file "$work/signalled" \
  >"$work/drain.out" &
drain_pid=$!
for _ in $(seq 1 600); do
  [ -e "$work/ready" ] && break
  kill -0 "$drain_pid" 2>/dev/null || break
  sleep 0.05
done
kill -TERM "$server_pid"
touch "$work/signalled"
exit_code=0
timeout 30 tail --pid="$server_pid" -f /dev/null || exit_code=124
wait "$server_pid" || exit_code=$?
server_pid=""
check "server exits 0 after SIGTERM (exit $exit_code)" "$([ "$exit_code" = 0 ]; echo $?)"
wait "$drain_pid" || true
cat "$work/drain.out"
count_lines "$work/drain.out"
stop_peer
check_database "after SIGTERM"

if grep -q 'panicked' "${logs[@]}"; then
  check "no server panic" 1
  grep -m5 'panicked' "${logs[@]}"
else
  check "no server panic" 0
fi

printf '\nsoak: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
