#!/bin/bash
# The ledger row written by an upsert vs a plain UPDATE (BENCHMARKS.md, Appends): pgbench on a
# copy of the benchmark's 10 k database (run `make bench` once first), 5 rotating repetitions.
set -e
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.." && source scripts/dev-env.sh test >/dev/null
SUPER="postgres://postgres@127.0.0.1:${HUIYIN_PG_PORT:-55432}/postgres"
URL="postgres://postgres@127.0.0.1:${HUIYIN_PG_PORT:-55432}/exp_upsert"
PGB=/usr/lib/postgresql/15/bin/pgbench
psql -q "$SUPER" -c "DROP DATABASE IF EXISTS exp_upsert" -c "CREATE DATABASE exp_upsert TEMPLATE huiyin_bench_10000"
psql -q "$URL" -f "$here"/setup.sql
psql -q "$URL" -c "SELECT exp_upsert(1); SELECT exp_update(2); SELECT exp_read(3);" >/dev/null
variants=(read upsert update)
for rep in 1 2 3 4 5; do
  for c in 1 32; do
    for k in 0 1 2; do
      v=${variants[$(( (k + rep) % 3 ))]}
      psql -q "$URL" -c "CHECKPOINT" >/dev/null
      tps=$($PGB -n -M prepared -T 4 -c $c -j 2 -D ncases=10000 -f "$here"/$v.pgb "$URL" 2>&1 | grep -oP 'tps = \K[0-9.]+' | head -1)
      echo "rep=$rep clients=$c variant=$v tps=$tps"
    done
  done
done
psql -q "$URL" -c "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'ledger'"
psql -q "$SUPER" -c "DROP DATABASE exp_upsert"
