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
#   scripts/soak.sh [--duration SECS] [--users N] [--crash-duration SECS] [--no-build]
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
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --users) users="$2"; shift 2 ;;
    --crash-duration) crash_duration="$2"; shift 2 ;;
    --no-build) build=no; shift ;;
    *) echo "usage: scripts/soak.sh [--duration SECS] [--users N] [--crash-duration SECS] [--no-build]" >&2; exit 2 ;;
  esac
done
pairs=$(( users / 10 ))

# shellcheck source=lib/server.sh
. scripts/lib/server.sh
if [ "$build" = yes ]; then build_release; fi
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
  if command -v sqlite3 >/dev/null; then
    sqlite3 "$db" "$1"
  else
    python3 -c 'import sqlite3, sys
for row in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print("|".join(map(str, row)))' "$db" "$1"
  fi
}
# A rotation is all or nothing: a used token of a live session has its
# successor, every successor's parent is marked used and points back, and
# every live session has exactly one unused token.
check_database() { # check_database WHEN
  check "integrity_check ok $1" "$([ "$(sql 'PRAGMA integrity_check;')" = ok ]; echo $?)"
  check "no foreign key violations $1" "$([ -z "$(sql 'PRAGMA foreign_key_check;')" ]; echo $?)"
  local half
  half=$(sql "SELECT
      (SELECT count(*) FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
         WHERE s.revoked_at IS NULL AND t.used_at IS NOT NULL AND t.successor_id IS NULL)
    + (SELECT count(*) FROM refresh_tokens c JOIN refresh_tokens p ON p.id = c.parent_id
         WHERE p.used_at IS NULL OR p.successor_id IS NOT c.id)
    + (SELECT count(*) FROM sessions s WHERE s.revoked_at IS NULL
         AND (SELECT count(*) FROM refresh_tokens t WHERE t.session_id = s.id AND t.used_at IS NULL) <> 1);")
  check "no half-applied rotation $1 ($half found)" "$([ "$half" = 0 ]; echo $?)"
}

printf '==> machine: %s cores (%s), %s\n' "$(nproc)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" "$(uname -sr)"

printf '\n==> soak: %s tabs (%s pairs sharing a jar), %s s, ACCESS_TOKEN_TTL=2s\n' "$users" "$pairs" "$duration"
start_server 2s
"$loadgen" soak --base "$base" --duration "$duration" --users "$users" --pairs "$pairs" \
  --server-pid "$server_pid" | tee "$work/soak.out" || true
count_lines "$work/soak.out"
stop_server
check_database "after the soak"

printf '\n==> crash: SIGKILL mid-load, restart on the same database\n'
start_server 2s
crash_users=$(( users / 2 ))
"$loadgen" soak --base "$base" --duration "$crash_duration" --users "$crash_users" \
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
start_server 2s
awk -v from="$killed_at" -v to="$(date +%s.%N)" \
  'BEGIN { printf "  server down for %.2f s (the grace window is 10 s)\n", to - from }'
wait "$load_pid" || true
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
check_database "after SIGTERM"

if grep -q 'panicked' "$work/server.log"; then
  check "no server panic" 1
  grep -m5 'panicked' "$work/server.log"
else
  check "no server panic" 0
fi

printf '\nsoak: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
