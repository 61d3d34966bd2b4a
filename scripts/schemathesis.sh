#!/usr/bin/env bash
# Hostile input: Schemathesis against the spec the server serves, once per role, with every check
# (`--checks all`) and every phase (examples, coverage, fuzzing, stateful).
#
#   scripts/schemathesis.sh          the full run (about 10 to 15 minutes on 2 cores)
#   scripts/schemathesis.sh quick    a short one (about 2 minutes)
#   scripts/schemathesis.sh serve    only the server, its database and the seed data, to reproduce a
#                                    failure by hand: writes the base URL and the tokens to
#                                    target/schemathesis/serve.env (0600) and waits for Ctrl-C
#
# What it does:
#   - installs the pinned tool (tools/hostile/requirements.txt) into tools/hostile/.venv when it is
#     missing or its pins changed (pip, from PyPI only; the spec check's tools/.venv is untouched);
#   - creates a fresh database of its own on the private PostgreSQL (scripts/dev-env.sh test) and
#     starts the already-built binary (target/debug/huiyin serve; nothing is compiled here) on a
#     free local port against it, with a random JWT secret and personal-data key of its own;
#   - seeds, through the HTTP API, a town, two villages, departments A and B, two categories, and
#     cases assigned to A and to B (tools/hostile/seed.py);
#   - mints a token per role (admin, supervisor, clerk, handler of A, handler of B, auditor,
#     citizen) and runs `schemathesis run` against /openapi.json once per role. The handlers' runs
#     list both handlers as peers, so Schemathesis' own object_level_authorization check replays
#     their reads as the other handler, and tools/hostile/hooks.py adds `huiyin_cross_unit_read`:
#     after every 2xx of handler A on /api/v1/cases/{id}..., handler B reads that case and must get
#     404 unless the case is B's too. The hooks also feed the seeded ids into generated requests;
#   - prints per role the operations tested, the test cases generated and the failures, and one
#     line per role `schemathesis <role>: N operations, M test cases, F failures` (F: failures that
#     are not documented exceptions; scripts/prove.sh greps these lines);
#   - exits non-zero if any failure is not listed in docs/schemathesis-exceptions.md, or if a run
#     could not be completed. The server is stopped and the database dropped at the end (trap).
#
# Knobs (environment): ST_MAX_EXAMPLES (examples per operation and phase; full 50, quick 3),
# ST_MAX_TIME (unset: none; a time budget per role instead, in which Schemathesis repeats fuzzing
# and stateful testing until it is spent), ST_WORKERS (1: the server is the bottleneck on 2 cores,
# and one worker keeps a run reproducible from its seed), ST_PHASES (full: all four; quick:
# examples,fuzzing,stateful, as coverage alone takes ~20 s per role), ST_ROLES (a
# space-separated subset, in this order by default: handler_a handler_b auditor citizen clerk
# supervisor admin; admin goes last since it may deactivate the seeded units), ST_SEED (the
# Hypothesis seed; random by default, printed), ST_OUT (where reports and the server's log go;
# target/schemathesis).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

mode=${1:-full}
case "$mode" in
  full) examples_default=50 phases_default=examples,coverage,fuzzing,stateful ;;
  quick) examples_default=3 phases_default=examples,fuzzing,stateful ;;
  serve) examples_default=0 phases_default= ;;
  *) echo "usage: scripts/schemathesis.sh [full|quick|serve]" >&2; exit 2 ;;
esac
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-$examples_default}
MAX_TIME=${ST_MAX_TIME:-}
PHASES=${ST_PHASES:-$phases_default}
WORKERS=${ST_WORKERS:-1}
ROLES=${ST_ROLES:-handler_a handler_b auditor citizen clerk supervisor admin}
SEED=${ST_SEED:-$(( (RANDOM << 15) | RANDOM ))}
OUT=${ST_OUT:-$ROOT/target/schemathesis}
BIN=$ROOT/target/debug/huiyin
VENV=$ROOT/tools/hostile/.venv
REQS=$ROOT/tools/hostile/requirements.txt
EXCEPTIONS=$ROOT/docs/schemathesis-exceptions.md

# (Not "schemathesis…": scripts/prove.sh picks its figures by the lines that start with that word.)
log() { echo "hostile-input: $*" >&2; }
die() { log "$*"; exit 1; }

[ -x "$BIN" ] || die "$BIN is missing; build it first (cargo build -p api --bin huiyin)"

# --- the pinned tool, in a venv of its own -------------------------------------------------------
stamp=$(sha256sum "$REQS" | cut -d' ' -f1)
if ! [ -x "$VENV/bin/schemathesis" ] || [ "$(cat "$VENV/.requirements-sha256" 2>/dev/null)" != "$stamp" ]; then
  log "installing the pinned Schemathesis into tools/hostile/.venv"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQS"
  echo "$stamp" >"$VENV/.requirements-sha256"
fi
PY=$VENV/bin/python

# --- a database of its own on the private PostgreSQL ---------------------------------------------
# shellcheck disable=SC1091
source scripts/dev-env.sh test >/dev/null
[ -n "${HUIYIN_TEST_DATABASE_URL:-}" ] || die "no superuser connection (HUIYIN_TEST_DATABASE_URL)"
DB=huiyin_st_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
# The service's and the owner's connections, pointed at the new database (same cluster, roles and
# passwords as the development database).
APP_URL=${DATABASE_URL%/*}/$DB
OWNER_URL=${HUIYIN_ADMIN_DATABASE_URL%/*}/$DB
psql_super() { psql -X -q -w -v ON_ERROR_STOP=1 "$HUIYIN_TEST_DATABASE_URL" "$@"; }

mkdir -p "$OUT"
if [ "$mode" != serve ]; then
  for role in $ROLES; do rm -rf "${OUT:?}/$role"; done
fi
rm -f "$OUT/server.log" "$OUT/serve.env" "$OUT/state.json"
WORK=$(mktemp -d)
chmod 700 "$WORK"
SERVER_PID=
cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  psql_super -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || log "could not drop database $DB"
  rm -rf "$WORK"
  if [ "$mode" = serve ]; then rm -f "$OUT/serve.env" "$OUT/state.json"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql_super -c "CREATE DATABASE \"$DB\" OWNER huiyin_owner" >/dev/null
log "database $DB created"

# --- the server, on a free port, with secrets of its own -----------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
PORT=$(free_port)
METRICS_PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
JWT_SECRET=$(head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n')
KEK=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
(
  export DATABASE_URL=$APP_URL HUIYIN_ADMIN_DATABASE_URL=$OWNER_URL
  export HUIYIN_JWT_SECRET=$JWT_SECRET HUIYIN_KEK=$KEK HUIYIN_KEK_ID=st-kek
  export HUIYIN_BIND=127.0.0.1:$PORT HUIYIN_METRICS_BIND=127.0.0.1:$METRICS_PORT
  export HUIYIN_MIGRATE_ON_START=true HUIYIN_CHECKPOINT_INTERVAL_S=0 HUIYIN_LOG=${HUIYIN_LOG:-info}
  # Every request comes from one address: the public side's rate limit (tested on its own in
  # citizen.rs) would otherwise answer most of them 429 and leave the endpoints unexplored.
  export HUIYIN_PUBLIC_RATE_PER_MIN=1000000 HUIYIN_PUBLIC_BURST=100000
  unset HUIYIN_JWT_PUBLIC_KEY HUIYIN_JWT_PRIVATE_KEY HUIYIN_CORS_ORIGINS
  exec "$BIN" serve
) >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
ready=
for _ in $(seq 1 300); do
  if curl -fsS --noproxy '*' -o /dev/null "$BASE/readyz" 2>/dev/null; then ready=1; break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.2
done
[ -n "$ready" ] || { tail -20 "$OUT/server.log" >&2; die "the server did not become ready (log: $OUT/server.log)"; }
log "server on $BASE (pid $SERVER_PID, log $OUT/server.log)"

# --- tokens and seed data ------------------------------------------------------------------------
token() { HUIYIN_JWT_SECRET=$JWT_SECRET "$BIN" token --ttl 8h "$@" | tail -1; }
export ST_TOKEN_ADMIN ST_TOKEN_SUPERVISOR ST_TOKEN_CLERK ST_TOKEN_AUDITOR ST_TOKEN_CITIZEN ST_TOKEN_HANDLER_A ST_TOKEN_HANDLER_B
ST_TOKEN_ADMIN=$(token --sub st-admin --role admin)
ST_TOKEN_SUPERVISOR=$(token --sub st-supervisor --role supervisor)
ST_TOKEN_CLERK=$(token --sub st-clerk --role clerk)
ST_TOKEN_AUDITOR=$(token --sub st-auditor --role auditor)
ST_TOKEN_CITIZEN=$(token --sub st-citizen --role citizen)
STATE=$WORK/state.json
"$PY" tools/hostile/seed.py reference "$BASE" "$STATE"
DEPT_A=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["dept_a"])' "$STATE")
DEPT_B=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["dept_b"])' "$STATE")
ST_TOKEN_HANDLER_A=$(token --sub st-handler-a --role handler --unit "$DEPT_A")
ST_TOKEN_HANDLER_B=$(token --sub st-handler-b --role handler --unit "$DEPT_B")
"$PY" tools/hostile/seed.py cases "$BASE" "$STATE"

if [ "$mode" = serve ]; then
  (
    umask 077
    {
      echo "BASE=$BASE"
      echo "STATE=$OUT/state.json"
      for v in ADMIN SUPERVISOR CLERK AUDITOR CITIZEN HANDLER_A HANDLER_B; do
        t=ST_TOKEN_$v
        echo "TOKEN_$v=${!t}"
      done
    } >"$OUT/serve.env"
    cp "$STATE" "$OUT/state.json"
  )
  log "serving on $BASE; base URL, tokens and seed ids in $OUT/serve.env and $OUT/state.json; Ctrl-C stops"
  wait "$SERVER_PID" || true
  exit 0
fi

# --- one run per role ----------------------------------------------------------------------------
role_token() {
  case "$1" in
    admin) echo "$ST_TOKEN_ADMIN" ;; supervisor) echo "$ST_TOKEN_SUPERVISOR" ;; clerk) echo "$ST_TOKEN_CLERK" ;;
    auditor) echo "$ST_TOKEN_AUDITOR" ;; citizen) echo "$ST_TOKEN_CITIZEN" ;;
    handler_a) echo "$ST_TOKEN_HANDLER_A" ;; handler_b) echo "$ST_TOKEN_HANDLER_B" ;;
    *) die "unknown role $1" ;;
  esac
}

log "mode $mode: phases $PHASES, $MAX_EXAMPLES examples per operation and phase${MAX_TIME:+, $MAX_TIME s per role}, $WORKERS workers, seed $SEED"
summary_lines=()
status=0
for role in $ROLES; do
  dir=$OUT/$role
  mkdir -p "$dir"
  # The identities, as a Web Fuzzing Commons auth document; the handlers' runs know both handlers
  # and list them as peers (object-level authorisation), the others only their own.
  "$PY" - "$role" "$(role_token "$role")" >"$WORK/auth-$role.json" <<'EOF'
import json, os, sys
role, token = sys.argv[1], sys.argv[2]
def entry(name, tok):
    return {"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {tok}"}]}
users = [entry(role, token)]
if role.startswith("handler_"):
    other = "handler_b" if role == "handler_a" else "handler_a"
    users.append(entry(other, os.environ["ST_TOKEN_" + other.upper()]))
print(json.dumps({"auth": users}))
EOF
  peers=
  if [[ $role == handler_* ]]; then peers='peers = ["handler_a", "handler_b"]'; fi
  cat >"$WORK/config-$role.toml" <<EOF
# Written by scripts/schemathesis.sh for the $role run.
[auth.wfc]
path = "$WORK/auth-$role.json"
user = "$role"
$peers
EOF
  log "run as $role"
  start=$(date +%s)
  set +e
  # From the scratch folder: Schemathesis and Hypothesis keep caches (.schemathesis/,
  # .hypothesis/) in the working directory; each run starts without them and leaves none behind.
  (cd "$WORK" &&
  ST_ROLE=$role ST_STATE=$STATE ST_BASE=$BASE ST_DIR=$dir ST_EXCEPTIONS=$EXCEPTIONS \
  SCHEMATHESIS_HOOKS=hooks PYTHONPATH=$ROOT/tools/hostile PYTHONDONTWRITEBYTECODE=1 \
    "$VENV/bin/schemathesis" --config-file "$WORK/config-$role.toml" run "$BASE/openapi.json" \
      --checks all \
      --phases "$PHASES" \
      --max-examples "$MAX_EXAMPLES" \
      ${MAX_TIME:+--max-time "$MAX_TIME"} \
      --workers "$WORKERS" \
      --seed "$SEED" \
      --request-timeout 20 \
      --suppress-health-check filter_too_much,too_slow \
      --generation-database none \
      --no-color \
      --report json,ndjson,junit \
      --report-json-path "$dir/report.json" \
      --report-ndjson-path "$dir/events.ndjson" \
      --report-junit-path "$dir/junit.xml" \
      >"$dir/output.txt" 2>&1)
  rc=$?
  set -e
  secs=$(( $(date +%s) - start ))
  "$PY" tools/hostile/summarize.py "$role" "$dir" "$rc" "$secs" || status=1
  summary_lines+=("$(cat "$dir/summary.txt")")
done

echo
for line in "${summary_lines[@]}"; do echo "$line"; done
if [ $status -ne 0 ]; then
  log "FAILED: failures that are not documented exceptions ($EXCEPTIONS), or a run that did not complete; reports in $OUT"
else
  log "passed: every failure is a documented exception; reports in $OUT"
fi
exit $status
