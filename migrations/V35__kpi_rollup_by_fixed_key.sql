-- V35: a KPI filtered by one key and grouped by another reads only that key's rollup rows, and
-- the replies of a period only replies again (issue 14).
--
-- A KPI grouped by one dimension and filtered by another (`group_by=category&village_id=…`)
-- reads a pair's rows (`village+category`) with one key fixed. The rollup's key (V25) leads with
-- the day, so the fixed key was tested on every row of the pair's days: at a million cases
-- 33 399 rows for 30 days of `village+category`, 2 785 kept, 20-31 ms warm and 158-198 ms with
-- the pages not cached. Led by the pair and the fixed key, the same read is 2 686 rows, 2.8 ms
-- warm and 7.7 ms cold (EXPLAIN ANALYZE, BENCHMARKS.md). `infra::analysis::rolled_sql` names
-- a fixed key in its own statement, so the condition reaches the index. Which of the pair's two
-- keys is fixed depends on the request (the pair's dimensions are in a fixed order), hence one
-- index each. The rollup is written by the background compaction and a rebuild, never by an
-- append, so appends do not maintain these.
--
-- A pair's rollup rows hold no reply lags, so such a KPI reads its whole period's replies from
-- the facts. V34 dropped V25's partial index of the replies for its index of every fact, which
-- then read all of the period's facts to keep the replies: 270 k entries for 30 days at a
-- million cases, 919 kept, 46-85 ms. The partial index is back: a reply fact costs two index
-- entries again, as before V34.
CREATE INDEX kpi_rollup_key_day_idx ON kpi_rollup (dim, key, day);
CREATE INDEX kpi_rollup_key2_day_idx ON kpi_rollup (dim, key2, day);
CREATE INDEX kpi_facts_reply_idx ON kpi_facts (at)
    INCLUDE (accepted_at, unit, village_id, category_id, channel, campaign_id, received_at)
    WHERE kind = 'reply';
