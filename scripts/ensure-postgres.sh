#!/usr/bin/env bash
# Make sure a PostgreSQL server for labrun answers on this machine; set one up
# and start it if not. Prints its connection URL on stdout (and nothing else).
#
#   bash scripts/ensure-postgres.sh                 # start (or find) the server
#   bash scripts/ensure-postgres.sh --create-db NAME  # … and create NAME if missing
#   bash scripts/ensure-postgres.sh --stop          # stop the server this script started
#
# Idempotent: when the server in the data dir already answers it only prints
# the URL. Otherwise it finds the server binaries (/usr/lib/postgresql/*/bin),
# installs Debian's `postgresql` when there are none, runs initdb as the
# `postgres` user (the server refuses to run as root) into a data dir owned by
# it, and starts the server detached (own session, stdin from /dev/null,
# output to a log file) so it never holds a CI job's output open.
#
# It listens on 127.0.0.1 and on a unix socket in the data dir, nowhere else;
# connections are trusted on loopback and the socket only (docs/decisions.md:
# a test and development server on one machine, with no password to leak).
#
# Env: LABRUN_PG_DATA (default /var/lib/labrun-postgres)
#      LABRUN_PG_PORT (default 55432: unlikely to meet another server)
#      LABRUN_PG_LOG  (default <data dir>.log)
#      LABRUN_PG_PIDFILE (default /var/run/labrun-postgres.pid) — written only
#      when this script started the server, so callers can tell and stop it.
set -euo pipefail

data_dir="${LABRUN_PG_DATA:-/var/lib/labrun-postgres}"
port="${LABRUN_PG_PORT:-55432}"
log_file="${LABRUN_PG_LOG:-${data_dir}.log}"
pid_file="${LABRUN_PG_PIDFILE:-/var/run/labrun-postgres.pid}"
pg_user="postgres"

say() { printf 'ensure-postgres: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

create_db=""
stop=0
while [ $# -gt 0 ]; do
  case "$1" in
    --create-db) [ $# -ge 2 ] || die "--create-db needs a database name"; create_db="$2"; shift 2 ;;
    --stop) stop=1; shift ;;
    -h|--help) sed -n '2,22p' "$0" >&2; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
if [ -n "$create_db" ] && ! [[ "$create_db" =~ ^[A-Za-z_][A-Za-z0-9_]{0,62}$ ]]; then
  die "database name must be letters, digits and _ (got: $create_db)"
fi

# Root runs the server's tools as the postgres user; that user runs them as they are.
as_pg() {
  if [ "$(id -un)" = "$pg_user" ]; then "$@"
  elif [ "$(id -u)" -eq 0 ]; then runuser -u "$pg_user" -- "$@"
  else sudo -u "$pg_user" -- "$@"
  fi
}

find_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"; return 0
    fi
  done
  return 1
}

url() { echo "postgres://${pg_user}@127.0.0.1:${port}/${1:-postgres}"; }

# One run at a time (test files start it side by side): the others wait here
# and then find the server answering.
if command -v flock >/dev/null 2>&1; then
  mkdir -p "$(dirname "$data_dir")"
  exec 9>"${data_dir}.lock"
  flock 9
fi

bin="$(find_bin || true)"

if [ "$stop" = 1 ]; then
  if [ -n "$bin" ] && [ -f "$data_dir/postmaster.pid" ]; then
    as_pg "$bin/pg_ctl" -D "$data_dir" -m fast -w -t 30 stop >&2 || say "it was not running"
    rm -f "$pid_file"
  else
    say "no server of ours is running in $data_dir"
  fi
  exit 0
fi

if [ -z "$bin" ]; then
  [ "$(id -u)" -eq 0 ] || die "no PostgreSQL server binaries found; run as root to install Debian's postgresql"
  say "no PostgreSQL server found: installing Debian's postgresql (this takes a minute once)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # Debian's package creates and starts its own cluster on 5432; ours is separate.
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  # Stop that cluster again: labrun's server is the one below, and nothing
  # this script did not ask for should keep running (CI waits for it).
  if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | while read -r version cluster _; do
      pg_ctlcluster "$version" "$cluster" stop >/dev/null 2>&1 || true
    done
  fi
  bin="$(find_bin)" || die "postgresql installed but no server binaries under /usr/lib/postgresql/*/bin"
fi
id "$pg_user" >/dev/null 2>&1 || die "no '$pg_user' system user (Debian's postgresql package creates it)"

answers() { as_pg "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres -U "$pg_user" -t 2; }

if ! answers; then
  if [ ! -s "$data_dir/PG_VERSION" ]; then
    say "initdb into $data_dir"
    mkdir -p "$data_dir"
    chown "$pg_user": "$data_dir"
    chmod 700 "$data_dir"
    as_pg "$bin/initdb" -D "$data_dir" -U "$pg_user" --auth-local=trust --auth-host=reject \
      --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    # Trust on loopback only; any other address is refused (and never listened on).
    cat >"$data_dir/pg_hba.conf" <<'EOF'
# labrun test/development server: trusted on the unix socket and loopback only.
local all all trust
host  all all 127.0.0.1/32 trust
host  all all ::1/128 reject
host  all all 0.0.0.0/0 reject
EOF
    chown "$pg_user": "$data_dir/pg_hba.conf"
  fi
  touch "$log_file"
  chown "$pg_user": "$log_file"
  say "starting PostgreSQL ($("$bin/postgres" --version)) on 127.0.0.1:$port, log $log_file"
  # listen_addresses and the socket dir are set on the command line, so an
  # old data dir cannot widen them. setsid: the server outlives this shell;
  # 9>&-: it does not inherit (and hold for ever) the lock above.
  as_pg setsid "$bin/pg_ctl" -D "$data_dir" -l "$log_file" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$data_dir -c max_connections=200 -c fsync=on" \
    start </dev/null >/dev/null 2>&1 9>&- || { tail -20 "$log_file" >&2; die "the server did not start"; }
  for _ in $(seq 1 60); do answers && break; sleep 0.5; done
  answers || { tail -20 "$log_file" >&2; die "the server started but does not answer on 127.0.0.1:$port"; }
  head -1 "$data_dir/postmaster.pid" >"$pid_file" 2>/dev/null || true
else
  say "PostgreSQL already answers on 127.0.0.1:$port"
fi

if [ -n "$create_db" ]; then
  exists=$(as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U "$pg_user" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$create_db'")
  if [ "$exists" != 1 ]; then
    as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U "$pg_user" -d postgres -qc "CREATE DATABASE \"$create_db\"" >&2
    say "created database $create_db"
  fi
fi

url "${create_db:-postgres}"
