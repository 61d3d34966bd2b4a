-- V34: a KPI's partial days read the facts index-only (issue 14).
--
-- A KPI reads the whole China days of its period from the rollup (V25) and the rest — the
-- period's first and last partial day, and today — from kpi_facts by time. Those facts were
-- fetched from the heap, and a day's facts lie on as many heap pages as there are facts: they
-- are written case by case, by the ledger's triggers and by a rebuild. At a million cases a
-- 16-hour part was 7 502 facts on 7 094 pages, 20.8 ms with a warm cache (733 ms cold); read
-- from this index it is 123 pages, 3.0 ms (EXPLAIN ANALYZE, BENCHMARKS.md). So the cost of a
-- KPI's partial days grows with the facts of a day, not with the pages they are scattered over.
--
-- The index carries every column a KPI tests, groups by or counts (all but case_id), and
-- replaces both indexes that read facts by time: kpi_facts_at_idx (V24), and V25's partial
-- kpi_facts_reply_idx for the reply times, whose columns it includes. A fact written costs one
-- wider index entry instead of one narrow entry (and a second for a reply).
DROP INDEX kpi_facts_at_idx;
DROP INDEX kpi_facts_reply_idx;
CREATE INDEX kpi_facts_at_idx ON kpi_facts (at)
    INCLUDE (kind, unit, done_at, stopped_at, rating, solved, followed_up, reopened, returned, accepted_at,
             village_id, category_id, channel, campaign_id, received_at);
