#!/usr/bin/env bash
# The reliability suite (make prove): runs its parts against the private PostgreSQL (and, for the
# crash and outage parts, clusters of their own) and writes RELIABILITY.md with what was run,
# when, and the figures the parts print. One part alone: scripts/prove.sh <part>, where <part> is
# crash, contention, overload, hostile, schemathesis, other-user, fuzz or soak.
#
# The test-based parts include the field-scale tests that `make test` skips (#[ignore]): the
# catch-up reader over 100 000 events, 500 streams with 16 abandoned exports. The soak runs the
# release server for SOAK_MINUTES (10) at half its measured peak; the fuzz targets run
# FUZZ_SECONDS (60) each; Schemathesis runs every role (scripts/schemathesis.sh). `all` writes
# RELIABILITY.md anew; one part alone appends its run (when, commit, row, figures) to it.
set -euo pipefail
cd "$(dirname "$0")/.."
part=${1:-all}
# shellcheck disable=SC1091
source scripts/dev-env.sh test >/dev/null
cargo build -q -p api --bin huiyin

declare -A FILTER=(
  [crash]='test(/reliability::(acknowledged_writes_survive|writes_during_a_postgresql_restart|a_write_whose_connection_is_terminated)/)'
  [contention]='test(/contention::|two_clerks_linking|an_assignment_that_raced|thirty_two_concurrent_appends|concurrent_commands_without_if_match|a_catch_up_reader|a_feed_consumer_during_sixteen_writers/)'
  [overload]='test(/reliability::(event_streams_beyond|one_caller_never|many_streams|a_stream_waits|exports_beyond|an_xlsx_export|every_kind_of_lost|readyz_answers|writes_answer_503_soon|an_exhausted_pool|metrics_are|at_field_scale)/) | test(/middleware::tests::a_body_whose_client_stops_reading/)'
  [hostile]='test(/api_auth::|hardening::|http_semantics::|api_inputs::|contract::|logs::/)'
)
declare -A SCRIPT=(
  [schemathesis]='scripts/schemathesis.sh'
  [other-user]='scripts/prove-other-user.sh'
  [fuzz]='scripts/fuzz.sh'
  [soak]='cargo build -q --release -p api --bin huiyin && cargo run -q --release -p bench --bin huiyin-bench -- soak --minutes ${SOAK_MINUTES:-10}'
)
parts=(crash contention overload hostile schemathesis other-user fuzz soak)
[ "$part" != all ] && parts=("$part")
# The lines a part prints that RELIABILITY.md keeps as its figures.
FIGURES='^ *(crash cycles|outage|pool exhaustion|contention|race|catch-up|field scale|hostile callers|schemathesis( [a-z_]+)?|other OS user|fuzz( [a-z_]+)?|soak):'

out=RELIABILITY.md
if [ "$part" = all ] || [ ! -f "$out" ]; then
  {
    echo "# Reliability"
    echo
    echo "Written by \`make prove\` on $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD),"
    echo "on $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(postgres --version 2>/dev/null || ls /usr/lib/postgresql)."
    echo "A test-based part is a set of tests of \`tests/integration\` (with the field-scale ones \`make test\`"
    echo "skips) and passes when all of them pass; a script part passes when its script does. The figures"
    echo "are what the parts printed."
    echo
    echo "| part | tests | passed | failed | seconds |"
    echo "|---|---|---|---|---|"
  } > "$out.tmp"
else
  # One part alone: its run is added after what is there.
  {
    cat "$out"
    echo
    echo "## \`$part\` run again on $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD)"
    echo
    echo "| part | tests | passed | failed | seconds |"
    echo "|---|---|---|---|---|"
  } > "$out.tmp"
fi
figures=""
status=0
for p in "${parts[@]}"; do
  log=$(mktemp)
  start=$(date +%s)
  if [ -n "${FILTER[$p]:-}" ]; then
    if cargo nextest run -p tests -p api --run-ignored all --no-fail-fast --success-output immediate \
         -E "${FILTER[$p]}" >"$log" 2>&1; then :; else status=1; fi
    summary=$(grep -E '^ +Summary' "$log" | tail -1)
    run=$(sed -nE 's/.* ([0-9]+) tests? run.*/\1/p' <<<"$summary")
    passed=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$summary")
    failed=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$summary")
  elif [ -n "${SCRIPT[$p]:-}" ]; then
    run=1
    if bash -c "${SCRIPT[$p]}" >"$log" 2>&1; then passed=1; failed=0; else passed=0; failed=1; status=1; fi
  else
    echo "prove: no part named $p" >&2
    exit 2
  fi
  secs=$(( $(date +%s) - start ))
  echo "| $p | ${run:-0} | ${passed:-0} | ${failed:-0} | $secs |" >> "$out.tmp"
  figures+=$(grep -E "$FIGURES" "$log" | sed -E 's/^ */- /' || true)
  figures+=$'\n'
  echo "prove: $p: ${passed:-0} passed, ${failed:-0} failed ($secs s)"
  if [ "${failed:-0}" != 0 ]; then tail -40 "$log" | sed 's/^/  /'; fi
  rm -f "$log"
done
{
  echo
  if [ "$part" = all ]; then echo "## Figures"; else echo "Its figures:"; fi
  echo
  printf '%s\n' "$figures" | sed '/^$/d'
} >> "$out.tmp"
mv "$out.tmp" "$out"
echo "prove: wrote $out"
exit $status
