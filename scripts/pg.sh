#!/usr/bin/env bash
# A private PostgreSQL cluster for development and tests, under a git-ignored folder.
#
#   scripts/pg.sh ensure      create (first time) and start the cluster; idempotent
#   scripts/pg.sh stop        stop it
#   scripts/pg.sh env         print DATABASE_URL / HUIYIN_ADMIN_DATABASE_URL / HUIYIN_TEST_DATABASE_URL
#   scripts/pg.sh psql [...]  psql on the development database as its owner
#   scripts/pg.sh clean-tests drop the databases left by earlier test runs
#
# It uses the system's PostgreSQL server binaries (Debian's postgresql-15). initdb and postgres
# refuse to run as root, so as root they run as the `postgres` user. The cluster listens on
# 127.0.0.1 and a private socket directory, on HUIYIN_PG_PORT (default 55432).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${HUIYIN_PG_PORT:-55432}

find_bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir 2>/dev/null || true)
    if [ -x "$d/initdb" ]; then echo "$d"; return; fi
  fi
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  echo "scripts/pg.sh: no PostgreSQL server binaries found; install postgresql-15 (apt-get install postgresql-15)" >&2
  exit 1
}
BIN=$(find_bindir)

if [ "$(id -u)" = 0 ]; then
  RUNAS=(runuser -u postgres --)
  # The server's binaries change back to the current directory; the postgres user must be able
  # to enter it (a checkout under /root is not).
  cd /
else
  RUNAS=()
fi

# The data folder: .pg/ in the checkout, unless the server's user cannot reach it (a checkout
# under /root, say); then a folder under /tmp named after the checkout.
DIR=${HUIYIN_PG_DIR:-$ROOT/.pg}
if [ -z "${HUIYIN_PG_DIR:-}" ] && [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$ROOT" 2>/dev/null; then
  DIR=/tmp/huiyin-pg-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)
fi
DATA=$DIR/data
SOCK=$DIR/sock
LOG=$DIR/postgres.log

SUPER_URL="postgres://postgres@127.0.0.1:$PORT/postgres"
ADMIN_URL="postgres://huiyin_owner@127.0.0.1:$PORT/huiyin"
APP_URL="postgres://huiyin_app@127.0.0.1:$PORT/huiyin"

psql_super() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 "$SUPER_URL" "$@"; }

ensure() {
  mkdir -p "$DIR"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$DIR"; chmod 700 "$DIR"; fi
  if [ ! -f "$DATA/PG_VERSION" ]; then
    echo "pg.sh: creating a private cluster in $DATA" >&2
    "${RUNAS[@]}" "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-instructions >/dev/null
    "${RUNAS[@]}" mkdir -p "$SOCK"
  fi
  if ! "${RUNAS[@]}" "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    "${RUNAS[@]}" "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start \
      -o "-p $PORT -k $SOCK -c listen_addresses=127.0.0.1 -c max_connections=500 -c shared_buffers=512MB -c synchronous_commit=on" >/dev/null
  fi
  for _ in $(seq 1 60); do
    if psql_super -c 'select 1' >/dev/null 2>&1; then break; fi
    sleep 0.5
  done
  psql_super <<'SQL'
SELECT 'CREATE ROLE huiyin_owner LOGIN CREATEDB' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'huiyin_owner')
\gexec
SELECT 'CREATE ROLE huiyin_app LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'huiyin_app')
\gexec
ALTER ROLE huiyin_app LOGIN;
SELECT 'CREATE DATABASE huiyin OWNER huiyin_owner' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'huiyin')
\gexec
SQL
}

case "${1:-}" in
  ensure) ensure ;;
  stop) "${RUNAS[@]}" "$BIN/pg_ctl" -D "$DATA" -m fast stop ;;
  env)
    echo "export DATABASE_URL=$APP_URL"
    echo "export HUIYIN_ADMIN_DATABASE_URL=$ADMIN_URL"
    echo "export HUIYIN_TEST_DATABASE_URL=$SUPER_URL"
    ;;
  psql) shift; exec "$BIN/psql" -X "$ADMIN_URL" "$@" ;;
  clean-tests)
    psql_super -At -c "SELECT datname FROM pg_database WHERE datname LIKE 'huiyin\_t\_%' OR datname LIKE 'huiyin\_tpl\_%'" |
      while read -r db; do psql_super -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null; done
    ;;
  *) echo "usage: scripts/pg.sh ensure|stop|env|psql|clean-tests" >&2; exit 2 ;;
esac
