#!/usr/bin/env bash
# A private PostgreSQL cluster for development and tests, under a git-ignored folder.
#
#   scripts/pg.sh ensure      create (first time) and start the cluster; idempotent
#   scripts/pg.sh stop        stop it
#   scripts/pg.sh env         print DATABASE_URL / HUIYIN_ADMIN_DATABASE_URL / HUIYIN_TEST_DATABASE_URL
#                             (with their passwords) and PGPASSFILE
#   scripts/pg.sh psql [...]  psql on the development database as its owner
#   scripts/pg.sh clean-tests drop the databases left by earlier test runs
#   scripts/pg.sh passwords   create the roles' passwords (first time) and the pgpass file; idempotent
#   scripts/pg.sh standby start|stop|remove
#                             a hot standby of the cluster, streaming from it, on HUIYIN_PG_PORT + 1
#                             (a fresh base backup each start: as big as the cluster; `make bench`)
#
# It uses the system's PostgreSQL server binaries (Debian's postgresql-15). initdb and postgres
# refuse to run as root, so as root they run as the `postgres` user. The cluster listens on
# 127.0.0.1 and a private socket directory, on HUIYIN_PG_PORT (default 55432).
#
# Every connection, over TCP or the socket, authenticates with a password (SCRAM-SHA-256): a
# cluster that trusted local connections would make every local OS user its superuser. The
# passwords of the three roles (postgres, huiyin_owner, huiyin_app) are random, generated once
# into .dev/pg/ (git-ignored; the folder 0700, the files 0600, owned by whoever runs this), with
# a pgpass file for psql and the tests. A cluster made by an earlier version of this script
# (trust) is switched over on the next `ensure`.
set -euo pipefail
umask 077

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
  SERVER_USER=postgres
  # The server's binaries change back to the current directory; the postgres user must be able
  # to enter it (a checkout under /root is not).
  cd /
else
  RUNAS=()
  SERVER_USER=$(id -un)
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

# The passwords, readable only by whoever runs this script (not by the server's user).
AUTH=$ROOT/.dev/pg
PGPASS=$AUTH/pgpass
ROLES=(postgres huiyin_owner huiyin_app)
export PGPASSFILE=$PGPASS

SUPER_URL="postgres://postgres@127.0.0.1:$PORT/postgres"
ADMIN_URL="postgres://huiyin_owner@127.0.0.1:$PORT/huiyin"

die() { echo "pg.sh: $*" >&2; exit 1; }

psql_super() { "$BIN/psql" -X -q -w -v ON_ERROR_STOP=1 "$SUPER_URL" "$@"; }

password() { cat "$AUTH/$1.password"; }

# The roles' passwords (generated once: 24 random bytes in hex) and the pgpass file, all 0600 in
# a 0700 folder; existing ones are tightened, never replaced.
passwords() {
  mkdir -p "$ROOT/.dev" "$AUTH"
  chmod 700 "$ROOT/.dev" "$AUTH"
  local r f
  for r in "${ROLES[@]}"; do
    f=$AUTH/$r.password
    if [ ! -s "$f" ]; then
      head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$f.tmp"
      mv "$f.tmp" "$f"
    fi
    chmod 600 "$f"
  done
  {
    for r in "${ROLES[@]}"; do
      printf '127.0.0.1:%s:*:%s:%s\n' "$PORT" "$r" "$(password "$r")"
      printf 'localhost:%s:*:%s:%s\n' "$PORT" "$r" "$(password "$r")"
    done
  } >"$PGPASS.tmp"
  chmod 600 "$PGPASS.tmp"
  mv "$PGPASS.tmp" "$PGPASS"
}

# pg_hba.conf: a password (SCRAM) for every connection, local or TCP, replication included.
HBA='# Written by scripts/pg.sh: every connection authenticates with a password (SCRAM-SHA-256).
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     scram-sha-256
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256'

# The data folder must be ours (or the postgres user's when root), and under /tmp not a link:
# there another user could have made it first.
check_dir() {
  if [ "${DIR#/tmp/}" != "$DIR" ] && [ -L "$DIR" ]; then die "$DIR is a symbolic link; refusing to use it"; fi
  if [ -e "$DIR" ]; then
    local owner
    owner=$(stat -c %U "$DIR")
    if [ "$owner" != "$SERVER_USER" ] && [ "$owner" != "$(id -un)" ]; then
      die "$DIR belongs to $owner; refusing to use it (remove it, or set HUIYIN_PG_DIR)"
    fi
  fi
}

ensure() {
  passwords
  check_dir
  mkdir -p "$DIR"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$DIR"; fi
  chmod 700 "$DIR"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    echo "pg.sh: creating a private cluster in $DATA" >&2
    # initdb reads the superuser's password from a file the server's user can read: a copy,
    # 0600, in the cluster's own 0700 folder, removed at once.
    local pwfile=$DIR/.initdb-password
    rm -f "$pwfile"
    password postgres >"$pwfile"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$pwfile"; fi
    if ! "${RUNAS[@]}" "$BIN/initdb" -D "$DATA" -U postgres --auth=scram-sha-256 --pwfile="$pwfile" \
      -E UTF8 --locale=C.UTF-8 --no-instructions >/dev/null; then
      rm -f "$pwfile"
      die "initdb failed"
    fi
    rm -f "$pwfile"
    "${RUNAS[@]}" mkdir -p "$SOCK"
  fi
  if ! "${RUNAS[@]}" "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    "${RUNAS[@]}" "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start \
      -o "-p $PORT -k $SOCK -c listen_addresses=127.0.0.1 -c max_connections=500 -c shared_buffers=512MB -c synchronous_commit=on -c password_encryption=scram-sha-256" >/dev/null
  fi
  local ok=
  for _ in $(seq 1 60); do
    if psql_super -c 'select 1' >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.5
  done
  [ -n "$ok" ] || die "cannot connect to the cluster in $DATA as postgres with the password in $AUTH (see $LOG).
If the password files were lost, recreate the cluster: scripts/pg.sh stop; rm -rf '$DIR'"
  # Set every role's password (from the files, through a psql variable: never on a command line),
  # then require passwords: this also switches over a cluster an earlier version made with trust.
  psql_super <<SQL
\\set pw_postgres '$(password postgres)'
\\set pw_owner '$(password huiyin_owner)'
\\set pw_app '$(password huiyin_app)'
ALTER ROLE postgres PASSWORD :'pw_postgres';
SELECT 'CREATE ROLE huiyin_owner LOGIN CREATEDB' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'huiyin_owner')
\\gexec
SELECT 'CREATE ROLE huiyin_app LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'huiyin_app')
\\gexec
ALTER ROLE huiyin_owner PASSWORD :'pw_owner';
ALTER ROLE huiyin_app LOGIN PASSWORD :'pw_app';
SELECT 'CREATE DATABASE huiyin OWNER huiyin_owner' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'huiyin')
\\gexec
SQL
  if [ "$("${RUNAS[@]}" cat "$DATA/pg_hba.conf")" != "$HBA" ]; then
    printf '%s\n' "$HBA" | "${RUNAS[@]}" tee "$DATA/pg_hba.conf" >/dev/null
    "${RUNAS[@]}" "$BIN/pg_ctl" -D "$DATA" reload >/dev/null
    echo "pg.sh: the cluster in $DATA now requires passwords (SCRAM)" >&2
  fi
}

# A streaming hot standby in $DIR/standby: a base backup (pg_basebackup -R), streaming from the
# primary as the postgres role (its password in the standby's own settings, in its 0700 folder),
# started on PORT + 1. `start` replaces an earlier standby.
STANDBY=$DIR/standby
STANDBY_PORT=$((PORT + 1))
standby() {
  case "${1:-}" in
    start)
      standby stop || true
      rm -rf "$STANDBY"
      mkdir -p "$STANDBY"
      chmod 700 "$STANDBY"
      # As whoever runs this (it reads the pgpass file), then handed to the server's user.
      "$BIN/pg_basebackup" -w -h 127.0.0.1 -p "$PORT" -U postgres -D "$STANDBY" -R -X stream -c fast
      # -R writes no password it read from the pgpass file, and the server's user cannot read
      # that file: the connection string, password included, goes into the standby's own 0600
      # settings (the later line wins).
      printf "primary_conninfo = 'host=127.0.0.1 port=%s user=postgres password=%s application_name=huiyin_standby'\n" \
        "$PORT" "$(password postgres)" >>"$STANDBY/postgresql.auto.conf"
      chmod 600 "$STANDBY/postgresql.auto.conf"
      if [ "$(id -u)" = 0 ]; then chown -R postgres: "$STANDBY"; fi
      "${RUNAS[@]}" "$BIN/pg_ctl" -D "$STANDBY" -l "$DIR/standby.log" -w -t 120 start \
        -o "-p $STANDBY_PORT -k $SOCK -c listen_addresses=127.0.0.1 -c max_connections=500 -c shared_buffers=512MB -c hot_standby=on -c hot_standby_feedback=on" >/dev/null
      ;;
    stop)
      if [ -f "$STANDBY/PG_VERSION" ] && "${RUNAS[@]}" "$BIN/pg_ctl" -D "$STANDBY" status >/dev/null 2>&1; then
        "${RUNAS[@]}" "$BIN/pg_ctl" -D "$STANDBY" -m fast stop >/dev/null
      fi
      ;;
    remove) standby stop; rm -rf "$STANDBY" ;;
    *) echo "usage: scripts/pg.sh standby start|stop|remove" >&2; exit 2 ;;
  esac
}

urlpw() { printf 'postgres://%s:%s@127.0.0.1:%s/%s' "$1" "$(password "$1")" "$PORT" "$2"; }

case "${1:-}" in
  ensure) ensure ;;
  stop) "${RUNAS[@]}" "$BIN/pg_ctl" -D "$DATA" -m fast stop ;;
  passwords) passwords ;;
  env)
    passwords
    printf 'export DATABASE_URL=%q\n' "$(urlpw huiyin_app huiyin)"
    printf 'export HUIYIN_ADMIN_DATABASE_URL=%q\n' "$(urlpw huiyin_owner huiyin)"
    printf 'export HUIYIN_TEST_DATABASE_URL=%q\n' "$(urlpw postgres postgres)"
    printf 'export PGPASSFILE=%q\n' "$PGPASS"
    ;;
  psql) shift; exec "$BIN/psql" -X "$ADMIN_URL" "$@" ;;
  standby) standby "${2:-}" ;;
  clean-tests)
    psql_super -At -c "SELECT datname FROM pg_database WHERE datname LIKE 'huiyin\_t\_%' OR datname LIKE 'huiyin\_tpl\_%'" |
      while read -r db; do psql_super -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null; done
    ;;
  *) echo "usage: scripts/pg.sh ensure|stop|env|psql|clean-tests|passwords|standby" >&2; exit 2 ;;
esac
