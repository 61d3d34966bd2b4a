#!/bin/bash
# What the ledger's indexes cost an append (BENCHMARKS.md, "A fair append workload"): the goal
# cell (1 event, 32 tasks, the default workload) with the schema as it ships and with one change
# at a time, made on every cell's database through HUIYIN_BENCH_TEMPLATE_SQL; the variants
# rotate, and each prints Huiyin's and the raw shape's rate. Then the wait events of Huiyin's
# append transactions, sampled every 5 ms by one session over one run of the cell.
# Needs the release build (`cargo build --release -p api --bin huiyin -p bench`); about 10 minutes.
set -e
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.." && source scripts/dev-env.sh test >/dev/null
bench=target/release/huiyin-bench
declare -A sql=(
  [as-shipped]=""
  [no-search-index]="DROP INDEX ledger_search_idx"
  [no-secondary-btrees]="DROP INDEX ledger_received_idx, ledger_due_idx, ledger_co_units_idx, ledger_duplicate_of_idx, ledger_calendar_incomplete_idx, ledger_village_received_idx, ledger_source_idx, ledger_supervision_idx, ledger_campaign_idx, ledger_next_due_idx, ledger_status_received_idx, ledger_campaign_due_idx, ledger_open_unit_idx"
  [gin-fastupdate-off]="ALTER INDEX ledger_search_idx SET (fastupdate = off)"
)
variants=(as-shipped no-search-index no-secondary-btrees gin-fastupdate-off)
# `run.sh waits` runs only the second part.
[ "${1:-}" = waits ] || for rep in 1 2 3; do
  for k in 0 1 2 3; do
    v=${variants[$(( (k + rep) % 4 ))]}
    HUIYIN_BENCH_TEMPLATE_SQL="${sql[$v]}" $bench appends --tasks 32 --batches 1 --window-s 3 --reps 1 2>&1 |
      grep -E "bench: append .*(as it ships|events' shape)" | sed "s/^/$v: /"
  done
done

# Wait events: one session samples pg_stat_activity (a fresh snapshot each time) while the cell
# runs (100 s, the whole run of the five systems); the backends inside append_batch() (Huiyin as it
# ships; its lone appends call append_events()) and append_events() (one transaction per append).
SUPER=$(echo "$HUIYIN_TEST_DATABASE_URL" | sed 's|/[^/]*$|/postgres|')
psql -q "$SUPER" -c "DROP TABLE IF EXISTS exp_waits; CREATE UNLOGGED TABLE exp_waits (kind text, wait text)"
psql -q "$SUPER" -c "DO \$\$ DECLARE t0 timestamptz := clock_timestamp(); BEGIN WHILE clock_timestamp() < t0 + interval '100 s' LOOP
    INSERT INTO exp_waits SELECT CASE WHEN query LIKE '%append_batch(%' THEN 'append_batch' ELSE 'append_events' END,
           coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity
     WHERE state = 'active' AND (query LIKE '%append_batch(%' OR query LIKE '%append_events(%') AND pid <> pg_backend_pid();
    PERFORM pg_stat_clear_snapshot(); PERFORM pg_sleep(0.005); END LOOP; END \$\$" &
sampler=$!
$bench appends --tasks 32 --batches 1 --window-s 10 --reps 1 2>&1 | grep -E "bench: append .*(as it ships|one transaction)"
wait $sampler
psql "$SUPER" -c "SELECT kind, wait, count(*) AS samples, round(100.0 * count(*) / sum(count(*)) OVER (PARTITION BY kind), 1) AS pct
                   FROM exp_waits GROUP BY 1, 2 ORDER BY 1, 3 DESC"
psql -q "$SUPER" -c "DROP TABLE exp_waits"
