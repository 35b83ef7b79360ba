# shellcheck shell=bash
# Private PostgreSQL clusters for tests (sourced, not run): each one in a
# fresh temporary folder on a free loopback port, trust auth for the
# postgres role, stopped and removed when the sourcing shell exits, also on
# failure or Ctrl-C. The machine's default cluster is never touched.
#
#   pg_bin_dir              print $PG_BIN_DIR if it holds initdb, else the
#                           newest /usr/lib/postgresql/*/bin
#   pg_start_private [NAME] start one; sets PG_URL (exported), PG_PORT,
#                           PG_DATA (the data folder) and PG_BIN_DIR
#                           (exported); may be called more than once
#   pg_stop_private DIR     stop the cluster whose PG_DATA is DIR, early
#   pg_at_exit COMMAND      run COMMAND (a string) when the shell exits
#
# Call pg_start_private directly, never in $(...) or a pipeline: the
# cleanup belongs to the shell that calls it, and such a subshell would stop
# the cluster as soon as it ended. In a ( ... ) subshell the cluster lives
# as long as that subshell. pg_start_private keeps an EXIT trap set
# before it (it joins the list below), but a `trap ... EXIT` set after it
# replaces it: use pg_at_exit instead.
#
# fsync and synchronous_commit stay at their defaults (on): benchmarks rely
# on durability being what production has.

# Sourcing twice must not forget the clusters already started.
if [ -z "${_pg_lib_loaded:-}" ]; then
  _pg_lib_loaded=1
  _pg_exit_cmds=()
  declare -gA _pg_folders=() _pg_bins=()
fi

# The postgres binaries refuse to run as root; as anyone else they run as
# that user, who then owns the cluster.
_pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then "$_pg_runuser" -u postgres -- "$@"; else "$@"; fi
}
# In sbin, which a minimal PATH leaves out.
_pg_runuser=$(PATH="$PATH:/usr/sbin:/sbin" command -v runuser || echo runuser)

_pg_run_exit_cmds() {
  local i
  # Newest first, and one failing cleanup must not skip the others.
  for ((i = ${#_pg_exit_cmds[@]} - 1; i >= 0; i--)); do
    eval "${_pg_exit_cmds[i]}" || true
  done
  _pg_exit_cmds=()
}

pg_at_exit() { # pg_at_exit COMMAND
  local cmd=$1 current sig code
  # A subshell shows its parent's traps, which don't run in it, until it
  # sets a trap itself: set one nobody uses, or the parent's cleanup would
  # run here too.
  if [ "$BASH_SUBSHELL" -gt 0 ]; then trap - SIGRTMAX; fi
  current=$(trap -p EXIT)
  # An EXIT trap that is not ours (set before us, or over us since) joins
  # the list, so it still runs.
  if [ -n "$current" ] && [ "$current" != "trap -- '_pg_run_exit_cmds' EXIT" ]; then
    eval "set -- $current"
    _pg_exit_cmds+=("$3")
  fi
  _pg_exit_cmds+=("$cmd")
  trap '_pg_run_exit_cmds' EXIT
  # Bash 5 runs the EXIT trap on these signals anyway, older ones may not:
  # make each an exit, unless the caller handles (or ignores) it already.
  for sig in HUP:129 INT:130 TERM:143; do
    code=${sig#*:} sig=${sig%:*}
    # shellcheck disable=SC2064 # the code is fixed now, on purpose
    [ -n "$(trap -p "$sig")" ] || trap "exit $code" "$sig"
  done
}

pg_bin_dir() {
  if [ -n "${PG_BIN_DIR:-}" ] && [ -x "$PG_BIN_DIR/initdb" ]; then
    echo "$PG_BIN_DIR"
    return 0
  fi
  local newest
  # sort -V: 15 after 9.6, and 16 after 15.
  newest=$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)
  if [ ! -x "$newest" ]; then
    echo "no PostgreSQL server in /usr/lib/postgresql/*/bin: run scripts/setup.sh" >&2
    return 1
  fi
  dirname "$newest"
}

_pg_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The server outlives the command that starts it: it must not inherit the
# caller's open files beyond stdin, stdout and stderr (which pg_ctl points
# at the log), or a pipe it holds would keep whoever reads it waiting.
# 255 is bash's own and closed on exec anyway.
_pg_close_fds() {
  local fd
  for fd in /proc/"$BASHPID"/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ] && [ "$fd" -ne 255 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}

# Whether PID is still the postmaster of DATA: kill -0 would also say yes
# to a zombie, or to an unrelated process that got the number since.
_pg_alive() { # _pg_alive PID DATA
  [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "-D $2 "
}

pg_start_private() { # pg_start_private [NAME]
  local name=${1:-test} bin folder data port attempt
  bin=$(pg_bin_dir) || return 1
  folder=$(mktemp -d "${TMPDIR:-/tmp}/pg-$name.XXXXXX")
  data="$folder/data"
  # Registered before anything can fail, so a half-made cluster goes too.
  _pg_folders[$data]=$folder
  _pg_bins[$data]=$bin
  pg_at_exit "_pg_stop_if_running $(printf %q "$data")"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$folder"
    if ! _pg_as_owner test -w "$folder"; then
      echo "$folder: the postgres user can't reach it (each parent needs o+x); point TMPDIR elsewhere" >&2
      return 1
    fi
  fi
  # From the folder: the caller's directory may be closed to postgres, and
  # initdb complains when it can't read where it starts. Data files go in
  # data/, which initdb needs empty; logs and the socket go beside it.
  # UTF8 and the C locale, whatever the caller's environment says.
  if ! (cd "$folder" && _pg_as_owner "$bin/initdb" -D "$data" --auth=trust -U postgres \
    --no-sync -E UTF8 --locale=C >"$folder/initdb.log" 2>&1); then
    echo "initdb failed; its log:" >&2
    tail -20 "$folder/initdb.log" >&2
    return 1
  fi
  # The port is free when picked but could be taken before postgres binds
  # it: try a few.
  for attempt in 1 2 3 4 5; do
    port=$(_pg_free_port)
    rm -f "$folder/server.log"
    if (cd "$folder" && _pg_close_fds && _pg_as_owner "$bin/pg_ctl" -D "$data" -l "$folder/server.log" -w \
      -o "-p $port -k $folder -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200" \
      start >"$folder/pg_ctl.log" 2>&1); then
      break
    fi
    if [ "$attempt" -eq 5 ] || ! grep -qs 'could not bind' "$folder/server.log"; then
      echo "PostgreSQL did not start; pg_ctl and the server said:" >&2
      cat "$folder/pg_ctl.log" >&2
      tail -20 "$folder/server.log" >&2 2>/dev/null || true
      return 1
    fi
  done
  PG_BIN_DIR=$bin
  # shellcheck disable=SC2034 # for the caller
  PG_PORT=$port
  # shellcheck disable=SC2034 # for the caller
  PG_DATA=$data
  PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
  export PG_BIN_DIR PG_URL
  printf 'PostgreSQL %s (%s, pid %s): %s\n' "$name" "$data" "$(head -1 "$data/postmaster.pid")" "$PG_URL"
}

# At exit, quietly skip the clusters that pg_stop_private stopped already.
_pg_stop_if_running() {
  [ -z "${_pg_folders[$1]:-}" ] || pg_stop_private "$1"
}

pg_stop_private() { # pg_stop_private DATA_DIR
  local data=${1%/} folder pid i
  # The temporary folder itself is accepted too.
  [ -n "${_pg_folders[$data]:-}" ] || data="$data/data"
  folder=${_pg_folders[$data]:-}
  if [ -z "$folder" ]; then
    echo "pg_stop_private: ${1:-} is not a cluster started by this shell" >&2
    return 1
  fi
  if [ -f "$data/postmaster.pid" ]; then
    pid=$(head -1 "$data/postmaster.pid")
    (cd "$folder" && _pg_as_owner "${_pg_bins[$data]}/pg_ctl" -D "$data" -m immediate stop) \
      >/dev/null 2>&1 || true
    # pg_ctl gives up on a postmaster that is already shutting down (Ctrl-C
    # reaches it too): wait, so the folder isn't removed under it.
    for i in $(seq 1 100); do
      _pg_alive "$pid" "$data" || break
      if [ "$i" -eq 100 ]; then kill -KILL "$pid" 2>/dev/null || true; fi
      sleep 0.05
    done
  fi
  rm -rf "$folder"
  unset "_pg_folders[$data]" "_pg_bins[$data]"
}
