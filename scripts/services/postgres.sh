#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for tests (real server, no mocks).
#   postgres.sh start <dir> [port]   last stdout line: postgresql+psycopg2://dlexp:dlexp@127.0.0.1:<port>/dlexp
#   postgres.sh stop <dir>
# Data, log and settings live under <dir> (<dir>/data), or in a /tmp folder linked from there when we are
# root and the server's user cannot reach <dir> (pytest's tmp dirs are mode 0700). Nothing is installed here:
# missing binaries fail with a one-line reason (Debian: apt-get install postgresql).
set -euo pipefail

die() { echo "postgres.sh: $*" >&2; exit 1; }
cmd=${1:-}
dir=${2:-}
[[ ($cmd == start || $cmd == stop) && -n $dir ]] || die "usage: postgres.sh start <dir> [port] | stop <dir>"

# The server binaries: $PG_BIN, else Debian's newest /usr/lib/postgresql/<ver>/bin, else whatever is on PATH
# (Debian's /usr/bin/pg_ctl is a pg_wrapper that wants a cluster from /etc/postgresql, so PATH comes last).
pg_bin=${PG_BIN:-}
if [[ -z $pg_bin ]]; then
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [[ -n $pg_bin ]] || pg_bin=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
fi
for b in initdb pg_ctl postgres psql; do
  [[ -x $pg_bin/$b ]] || die "PostgreSQL server binaries not found ($b; apt-get install postgresql)"
done

# postgres refuses to run as root: as root, run the server as the 'postgres' user (else 'nobody').
as_user=()
if [[ $(id -u) == 0 ]]; then
  user=postgres
  id -u "$user" >/dev/null 2>&1 || user=nobody
  as_user=(runuser -u "$user" --)
fi
pg_ctl() { "${as_user[@]}" "$pg_bin/pg_ctl" "$@"; }

if [[ $cmd == stop ]]; then
  data=$(readlink -f "$dir/data" || true)
  if [[ -n $data ]] && pg_ctl status -D "$data" >/dev/null 2>&1; then
    pg_ctl stop -D "$data" -m fast -t 30 -s >/dev/null || die "the server in $data did not stop"
  fi
  # A data folder outside <dir> (see above) would outlive the caller's cleanup of <dir>: remove it here.
  if [[ -L $dir/data ]]; then
    rm -rf -- "$data" && rm -f -- "$dir/data"
  fi
  exit 0
fi

port=${3:-}
if [[ -z $port ]]; then
  # A free port: a random one that nothing answers on (a connect probe needs no python or ss).
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
  done
  [[ -n $port ]] || die "no free port found"
fi

mkdir -p "$dir"
data=$dir/data
if [[ ! -e $data && ${#as_user[@]} -gt 0 ]] && ! "${as_user[@]}" test -x "$dir"; then
  ln -s "$(mktemp -d /tmp/dlexp-pg.XXXXXX)" "$data"
fi
mkdir -p "$data"
data=$(readlink -f "$data") # the server's user may reach the data folder only by its real path
if [[ ! -f $data/PG_VERSION ]]; then
  [[ ${#as_user[@]} -gt 0 ]] && chown "$user:" "$data"
  # One superuser 'dlexp', password 'dlexp' (scram on TCP), UTF-8. The password file must be readable by
  # the server's user, so it is a /tmp file of its own (initdb wants the data folder empty).
  pwfile=$(mktemp /tmp/dlexp-pg-pw.XXXXXX)
  echo dlexp >"$pwfile"
  [[ ${#as_user[@]} -gt 0 ]] && chown "$user:" "$pwfile"
  rc=0
  "${as_user[@]}" "$pg_bin/initdb" -D "$data" -U dlexp --pwfile="$pwfile" --auth=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 || rc=$?
  rm -f "$pwfile"
  [[ $rc == 0 ]] || die "initdb failed: $(tail -n 1 "$dir/initdb.log")"
  # TCP on 127.0.0.1 only (no unix socket: its default folder may not exist, and paths are length-limited);
  # no durability, the data is thrown away.
  printf '%s\n' "# scripts/services/postgres.sh: a throwaway test server" "listen_addresses = '127.0.0.1'" \
    "unix_socket_directories = ''" 'fsync = off' 'synchronous_commit = off' 'full_page_writes = off' \
    >>"$data/postgresql.conf"
fi

pg_ctl status -D "$data" >/dev/null 2>&1 && die "a server is already running in $data"
# A start that fails after the server is up (creating the database) stops it again.
trap 'rc=$?; ((rc == 0)) || pg_ctl stop -D "$data" -m immediate -s >/dev/null 2>&1 || true; exit $rc' EXIT
# The port goes on the command line, so that a restart of the same <dir> may take another one.
pg_ctl start -D "$data" -l "$data/postgres.log" -w -t 60 -s -o "-p $port" >/dev/null 2>&1 ||
  die "server did not start: $(grep -m 1 -E 'could not bind|FATAL|PANIC|ERROR' "$data/postgres.log" 2>/dev/null || tail -n 1 "$data/postgres.log")"

export PGPASSWORD=dlexp
psql() { "$pg_bin/psql" -h 127.0.0.1 -p "$port" -U dlexp -d postgres -tAq "$@"; }
[[ $(psql -c "select 1 from pg_database where datname = 'dlexp'") == 1 ]] || psql -c "create database dlexp" >/dev/null
echo "postgresql+psycopg2://dlexp:dlexp@127.0.0.1:$port/dlexp"
