#!/usr/bin/env bash
# Reliability suite, hostile callers: another OS user against the development setup.
#
#   scripts/prove-other-user.sh      (as root; CI runs as root)
#
# Sets up the development environment as `make run` does (sources scripts/dev-env.sh: the private
# PostgreSQL and the secrets in .dev/; the Rust server is not started), creates a throwaway
# unprivileged OS user (huiyin-intruder, removed on exit) and, as that user, tries to read every
# secret, list .dev/, connect to the cluster over TCP and over its socket without the passwords,
# and read the cluster's files and logs. As root it checks that pg_hba.conf trusts nothing and
# that .dev is 0700 (folders) / 0600 (files). Every check prints `PASS <name>` or
# `FAIL <name>: <what happened>`, then one line `other OS user: N checks, F failed`; exit 1 if any
# failed (HUIYIN_PROVE_VERBOSE=1 also shows how each refusal read). A refusal only counts when it
# is one (permission denied, authentication failed): a check that could not be made (server
# down, user missing) fails as inconclusive. The `control:` checks must succeed: they show the
# intruder can run the tools and the cluster is up, so the refusals mean something.
#
# Not root: prints a SKIPPED line and exits 0 (fails when CI=true).
set -euo pipefail
umask 077

ROOT=$(cd "$(dirname "$0")/.." && pwd)
INTRUDER=${HUIYIN_INTRUDER:-huiyin-intruder}
MARK='huiyin prove-other-user throwaway'
PORT=${HUIYIN_PG_PORT:-55432}

if [ "$(id -u)" != 0 ]; then
  if [ "${CI:-}" = true ]; then
    echo "FAIL other OS user: needs root to create a throwaway OS user (CI=true, running as $(id -un))"
    echo "other OS user: 1 checks, 1 failed"
    exit 1
  fi
  echo "SKIPPED other OS user: needs root to create a throwaway OS user (run it as root: sudo $0)"
  exit 0
fi
cd /

# --- 1. The development setup, as `make run` makes it --------------------------------------
# With the private cluster and the secrets from .dev/ (not from the caller's environment).
unset DATABASE_URL HUIYIN_ADMIN_DATABASE_URL HUIYIN_TEST_DATABASE_URL HUIYIN_KEK HUIYIN_JWT_SECRET \
  HUIYIN_JWT_PUBLIC_KEY HUIYIN_JWT_PRIVATE_KEY HUIYIN_CHECKPOINT_PRIVATE_KEY HUIYIN_CHECKPOINT_PUBLIC_KEY
set --
# shellcheck disable=SC1091
if ! source "$ROOT/scripts/dev-env.sh" >/dev/null; then
  echo "FAIL setup: scripts/dev-env.sh did not set up the development environment (see above)"
  echo "other OS user: 1 checks, 1 failed"
  exit 1
fi
unset HUIYIN_KEK HUIYIN_JWT_SECRET DATABASE_URL HUIYIN_ADMIN_DATABASE_URL HUIYIN_TEST_DATABASE_URL

DEV=$ROOT/.dev
AUTH=$DEV/pg
PGPASS=$AUTH/pgpass
BIN=$(pg_config --bindir 2>/dev/null || true)
[ -x "$BIN/initdb" ] || BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
PSQL=$BIN/psql
PY3=/usr/bin/python3

N=0
F=0
# HUIYIN_PROVE_VERBOSE=1: how each refusal read, on an indented line under its PASS.
pass() {
  N=$((N + 1)); echo "PASS $1"
  if [ "${HUIYIN_PROVE_VERBOSE:-}" = 1 ] && [ -n "${2:-}" ]; then echo "    $2"; fi
}
fail() { N=$((N + 1)); F=$((F + 1)); echo "FAIL $1: $2"; }
oneline() { tr '\n' ' ' | sed -E 's/[[:space:]]+/ /g; s/ $//' | cut -c1-300; }

# What counts as a refusal.
FS_REFUSED='Permission denied'
PG_REFUSED='no password supplied|password authentication failed|Permission denied|pg_hba.conf rejects|authentication failed'

# As root, with a clean environment (no ~/.pgpass, no PG* variables).
as_root_pg() { timeout 30 env -i PATH=/usr/bin:/bin HOME=/nonexistent LC_ALL=C PGCONNECT_TIMEOUT=10 "$@"; }
# As the intruder: its own uid and groups, a clean environment (nothing of ours is passed on).
as_intruder() {
  timeout 30 runuser -u "$INTRUDER" -- env -i PATH=/usr/bin:/bin HOME=/nonexistent LC_ALL=C \
    PGCONNECT_TIMEOUT=10 "$@"
}

# A PostgreSQL client speaking the protocol itself, to send an EMPTY password (libpq never sends
# one: it treats an empty password as none). Prints `authenticated as …` when it gets in,
# `refused: <SQLSTATE> <message>` or `cannot connect: <reason>` otherwise.
read -r -d '' EMPTY_PW_CLIENT <<'PY' || true
import base64, hashlib, hmac, os, socket, struct, sys
host, port, user, db = sys.argv[1:5]
def done(msg, rc):
    print(msg); sys.exit(rc)
try:
    if host.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.settimeout(15)
        s.connect("%s/.s.PGSQL.%s" % (host, port))
    else:
        s = socket.create_connection((host, int(port)), timeout=15)
except OSError as e:
    done("cannot connect: %s" % (e.strerror or e), 1)
def recvn(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: done("server closed the connection", 1)
        b += c
    return b
def send(t, body): s.sendall(t + struct.pack("!I", len(body) + 4) + body)
body = struct.pack("!I", 196608) + b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0\0"
s.sendall(struct.pack("!I", len(body) + 4) + body)
pw = b""
first_bare = "n=,r=" + base64.b64encode(os.urandom(18)).decode()
while True:
    t = recvn(1); (n,) = struct.unpack("!I", recvn(4)); b = recvn(n - 4)
    if t == b"E":
        f = {x[:1].decode(): x[1:].decode("utf-8", "replace") for x in b.split(b"\0") if x}
        done("refused: %s %s" % (f.get("C", ""), f.get("M", "")), 1)
    if t != b"R": done("unexpected message %r" % t, 1)
    (code,) = struct.unpack("!I", b[:4])
    if code == 0: done("authenticated as %s with an empty password" % user, 0)
    elif code == 3: send(b"p", pw + b"\0")
    elif code == 5:
        inner = hashlib.md5(pw + user.encode()).hexdigest().encode()
        send(b"p", b"md5" + hashlib.md5(inner + b[4:8]).hexdigest().encode() + b"\0")
    elif code == 10:
        if b"SCRAM-SHA-256" not in b[4:].split(b"\0"): done("no SCRAM-SHA-256 offered", 1)
        data = ("n,," + first_bare).encode()
        send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(data)) + data)
    elif code == 11:
        server_first = b[4:].decode()
        a = dict(kv.split("=", 1) for kv in server_first.split(","))
        salted = hashlib.pbkdf2_hmac("sha256", pw, base64.b64decode(a["s"]), int(a["i"]))
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        final = "c=biws,r=" + a["r"]
        auth = ",".join([first_bare, server_first, final]).encode()
        sig = hmac.new(hashlib.sha256(client_key).digest(), auth, "sha256").digest()
        proof = bytes(x ^ y for x, y in zip(client_key, sig))
        send(b"p", (final + ",p=" + base64.b64encode(proof).decode()).encode())
    elif code == 12: pass
    else: done("unsupported authentication request %d" % code, 1)
PY

# --- the cluster: where it is, as the server itself says -------------------------------------
pwfile() { cat "$AUTH/$1.password"; }
SERVER_INFO=
rc=0
SERVER_INFO=$(as_root_pg PGPASSWORD="$(pwfile postgres)" "$PSQL" -X -w -At \
  "host=127.0.0.1 port=$PORT user=postgres dbname=postgres" \
  -c "select v from (values (1, current_setting('data_directory')), (2, current_setting('hba_file')),
        (3, trim(split_part(current_setting('unix_socket_directories'), ',', 1))),
        (4, coalesce(pg_current_logfile(), '')), (5, pg_relation_filepath('pg_authid'))) s(i, v) order by i" 2>&1) || rc=$?
if [ $rc != 0 ]; then
  fail "control: root connects over TCP 127.0.0.1:$PORT as postgres with its password" "$(oneline <<<"$SERVER_INFO")"
  echo "other OS user: $N checks, $F failed"
  exit 1
fi
{ read -r DATA; read -r HBA_FILE; read -r SOCK; read -r COLLECTOR_LOG; read -r AUTHID_FILE; } <<<"$SERVER_INFO"
CDIR=$(dirname "$DATA")
CLUSTER_LOG=$CDIR/postgres.log # where scripts/pg.sh has pg_ctl write the server's log
# The data folder scripts/pg.sh uses (the same rule): the cluster we test must be that one.
EXPECTED=${HUIYIN_PG_DIR:-$ROOT/.pg}
if [ -z "${HUIYIN_PG_DIR:-}" ] && ! runuser -u postgres -- test -x "$ROOT" 2>/dev/null; then
  EXPECTED=/tmp/huiyin-pg-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)
fi

# --- the throwaway intruder --------------------------------------------------------------
CREATED=
cleanup() {
  if [ -n "$CREATED" ]; then
    userdel "$INTRUDER" >/dev/null 2>&1 || echo "prove-other-user: could not remove the OS user $INTRUDER; remove it: userdel $INTRUDER" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
if getent passwd "$INTRUDER" >/dev/null; then
  if [ "$(getent passwd "$INTRUDER" | cut -d: -f5)" = "$MARK" ]; then
    userdel "$INTRUDER" >/dev/null 2>&1 || true # left by an interrupted run
  else
    echo "prove-other-user: an OS user $INTRUDER exists and was not made by this script; refusing to use it (set HUIYIN_INTRUDER)" >&2
    exit 1
  fi
fi
useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
  --user-group --comment "$MARK" "$INTRUDER"
CREATED=1

reach=no
as_intruder test -x "$ROOT" 2>/dev/null && reach=yes
echo "setup: intruder $INTRUDER (uid $(id -u "$INTRUDER")) against $ROOT (it can enter the checkout: $reach)," \
  "cluster $DATA on 127.0.0.1:$PORT and $SOCK"

# --- controls: the refusals below mean something -----------------------------------------
name="control: the cluster on port $PORT is the development cluster of scripts/pg.sh"
if [ "$CDIR" = "$EXPECTED" ]; then pass "$name"; else fail "$name" "its data folder is $DATA, scripts/pg.sh uses $EXPECTED/data"; fi

name="control: $INTRUDER is unprivileged (not uid 0, no group but its own)"
ids=$(as_intruder sh -c 'echo "$(id -u) $(id -G)"' 2>&1) || true
own_gid=$(id -g "$INTRUDER")
if [ "$ids" = "$(id -u "$INTRUDER") $own_gid" ] && [ "$(id -u "$INTRUDER")" != 0 ]; then pass "$name"
else fail "$name" "runs as uid and groups: $ids"; fi

name="control: $INTRUDER can read a world-readable file and run psql and python3"
rc=0
out=$(as_intruder sh -c "wc -c /etc/passwd >/dev/null && '$PSQL' --version >/dev/null && '$PY3' -I -c 'pass'" 2>&1) || rc=$?
if [ $rc = 0 ]; then pass "$name"; else fail "$name" "$(oneline <<<"$out")"; fi

name="control: root connects over TCP 127.0.0.1:$PORT as postgres with its password"
pass "$name" # it did, above

name="control: root connects over the socket $SOCK as postgres with its password"
rc=0
out=$(as_root_pg PGPASSWORD="$(pwfile postgres)" "$PSQL" -X -w -At -c 'select current_user' \
  "host=$SOCK port=$PORT user=postgres dbname=postgres" 2>&1) || rc=$?
if [ $rc = 0 ] && [ "$out" = postgres ]; then pass "$name"; else fail "$name" "$(oneline <<<"$out")"; fi

# --- 2. as the intruder: the secrets ---------------------------------------------------------
rel() { printf '%s' "${1#"$ROOT"/}"; }
check_read() { # name path
  local name=$1 path=$2 out rc=0
  if [ ! -e "$path" ]; then fail "$name" "$path does not exist: nothing to check (the setup did not make it)"; return; fi
  out=$(as_intruder wc -c -- "$path" 2>&1) || rc=$?
  if [ $rc = 0 ]; then fail "$name" "$INTRUDER read it ($(awk '{print $1}' <<<"$out") bytes)"
  elif grep -qE "$FS_REFUSED" <<<"$out"; then pass "$name" "$(oneline <<<"$out")"
  else fail "$name" "inconclusive: $(oneline <<<"$out")"; fi
}
check_list() { # name dir
  local name=$1 dir=$2 out rc=0
  if [ ! -d "$dir" ]; then fail "$name" "$dir does not exist: nothing to check"; return; fi
  out=$(as_intruder ls -A -- "$dir" 2>&1) || rc=$?
  if [ $rc = 0 ]; then fail "$name" "$INTRUDER listed it: $(oneline <<<"$out")"
  elif grep -qE "$FS_REFUSED" <<<"$out"; then pass "$name" "$(oneline <<<"$out")"
  else fail "$name" "inconclusive: $(oneline <<<"$out")"; fi
}

required=(kek jwt-secret pg/postgres.password pg/huiyin_owner.password pg/huiyin_app.password pg/pgpass)
command -v openssl >/dev/null 2>&1 && required+=(checkpoint-private.pem)
files=()
for f in "${required[@]}"; do files+=("$DEV/$f"); done
while IFS= read -r -d '' f; do
  case " ${files[*]} " in *" $f "*) ;; *) files+=("$f") ;; esac
done < <(find "$DEV" -mindepth 1 ! -type d -print0 | sort -z)
for f in "${files[@]}"; do check_read "read $(rel "$f")" "$f"; done
check_list "list .dev" "$DEV"
check_list "list .dev/pg" "$AUTH"

# --- as the intruder: the cluster -----------------------------------------------------------
check_connect() { # transport-label host role db mode
  local label=$1 host=$2 role=$3 db=$4 mode=$5 name out rc=0
  local conn="host=$host port=$PORT user=$role dbname=$db"
  case $mode in
    none)
      name="connect over $label as $role, no password"
      out=$(as_intruder "$PSQL" -X -w -At -c 'select current_user' "$conn" 2>&1) || rc=$? ;;
    empty)
      name="connect over $label as $role, empty password"
      out=$(as_intruder "$PY3" -I -c "$EMPTY_PW_CLIENT" "$host" "$PORT" "$role" "$db" 2>&1) || rc=$? ;;
    pgpass)
      # libpq ignores a pgpass file other users can read; an intruder who can read it copies it.
      name="connect over $label as $role, PGPASSFILE=$(rel "$PGPASS")"
      out=$(as_intruder P="$PGPASS" sh -c '
        t=$(mktemp) || exit 3
        trap "rm -f \"\$t\"" EXIT
        if cat -- "$P" >"$t" 2>/dev/null; then PGPASSFILE=$t; else PGPASSFILE=$P; fi
        export PGPASSFILE
        "$0" -X -w -At -c "select current_user" "$1"' "$PSQL" "$conn" 2>&1) || rc=$? ;;
  esac
  if [ $rc = 0 ]; then
    if [ "$mode" = empty ]; then fail "$name" "$(oneline <<<"$out")"; else fail "$name" "connected as $(oneline <<<"$out")"; fi
  elif grep -qE "$PG_REFUSED" <<<"$out"; then pass "$name" "$(oneline <<<"$out")"
  else fail "$name" "inconclusive: $(oneline <<<"$out")"; fi
}
dbof() { if [ "$1" = postgres ]; then echo postgres; else echo huiyin; fi; }
for transport in tcp socket; do
  if [ $transport = tcp ]; then host=127.0.0.1 label="TCP 127.0.0.1:$PORT"; else host=$SOCK label="the socket $SOCK"; fi
  for role in postgres huiyin_owner huiyin_app; do
    for mode in none empty pgpass; do check_connect "$label" "$host" "$role" "$(dbof "$role")" "$mode"; done
  done
done

# The socket's folder keeps the intruder out before PostgreSQL is asked; so that the socket's own
# rule is tested too: root (who can reach the socket) without a password.
for role in postgres huiyin_owner huiyin_app; do
  name="connect over the socket $SOCK as $role, no password, from a user who can reach it (root)"
  rc=0
  out=$(as_root_pg "$PSQL" -X -w -At -c 'select current_user' "host=$SOCK port=$PORT user=$role dbname=$(dbof "$role")" 2>&1) || rc=$?
  if [ $rc = 0 ]; then fail "$name" "connected as $(oneline <<<"$out")"
  elif grep -qE "$PG_REFUSED" <<<"$out"; then pass "$name" "$(oneline <<<"$out")"
  else fail "$name" "inconclusive: $(oneline <<<"$out")"; fi
done

# --- as the intruder: the cluster's files and logs ------------------------------------------
check_list "list the cluster's data directory $DATA" "$DATA"
check_read "read the roles' password verifiers ($DATA/$AUTHID_FILE, pg_authid)" "$DATA/$AUTHID_FILE"
check_read "read the cluster's $HBA_FILE" "$HBA_FILE"
if [ "$CLUSTER_LOG" = "$ROOT/.pg/postgres.log" ]; then
  check_read "read the cluster's log, the repo's postgres log $CLUSTER_LOG" "$CLUSTER_LOG"
else
  check_read "read the cluster's log $CLUSTER_LOG" "$CLUSTER_LOG"
fi
if [ -n "$COLLECTOR_LOG" ]; then
  case $COLLECTOR_LOG in /*) ;; *) COLLECTOR_LOG=$DATA/$COLLECTOR_LOG ;; esac
  check_read "read the cluster's collected log $COLLECTOR_LOG" "$COLLECTOR_LOG"
fi
if [ "$ROOT/.pg/postgres.log" != "$CLUSTER_LOG" ] && [ -e "$ROOT/.pg/postgres.log" ]; then
  check_read "read the repo's postgres log .pg/postgres.log" "$ROOT/.pg/postgres.log"
fi

# --- as root: pg_hba.conf and the modes of .dev ---------------------------------------------
hba_files=("$HBA_FILE")
[ "$DATA/pg_hba.conf" != "$HBA_FILE" ] && [ -e "$DATA/pg_hba.conf" ] && hba_files+=("$DATA/pg_hba.conf")
for h in "${hba_files[@]}"; do
  name="no trust line in $h"
  if [ ! -r "$h" ]; then fail "$name" "cannot read it"; continue; fi
  trust=$(sed 's/#.*//' "$h" | awk '{for (i = 1; i <= NF; i++) if ($i == "trust") {print NR ": " $0; break}}')
  if [ -z "$trust" ]; then pass "$name"; else fail "$name" "$(oneline <<<"$trust")"; fi
done

while IFS= read -r -d '' p; do
  r=$(rel "$p")
  if [ -L "$p" ]; then fail "mode .dev: $r" "a symbolic link (to $(readlink "$p"))"; continue; fi
  if [ -d "$p" ]; then want=700; elif [ -f "$p" ]; then want=600; else fail "mode .dev: $r" "neither a file nor a folder"; continue; fi
  name="mode 0$want, owner root: $r"
  got=$(stat -c '%a %U' "$p")
  if [ "$got" = "$want root" ]; then pass "$name"; else fail "$name" "mode 0${got% *}, owner ${got#* }"; fi
done < <(find "$DEV" -print0 | sort -z)

echo "other OS user: $N checks, $F failed"
if [ "$F" != 0 ]; then exit 1; fi
