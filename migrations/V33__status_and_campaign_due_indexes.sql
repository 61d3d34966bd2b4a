-- V33: two ledger reads that walked an index past rows they then threw away (EXPLAIN ANALYZE at
-- a million cases, BENCHMARKS.md):
-- * A ledger page filtered by status, newest first (`status=closed&channel=phone`): the newest
--   rows are open cases, so the backward scan of the received-date index walked weeks of them
--   before it found closed ones (p95 49.8 ms at 1 M against 8.5 ms at 10 k; in psql 25 ms, 50 k
--   rows filtered out). Led by the status and including the other filters the ledger's page
--   tests, so the planner reads it index-only (0.2 ms). Its columns are all in
--   ledger_received_idx already, so no update that was HOT stops being HOT.
-- * A campaign's overdue list in its summary report (`infra::report::overdue`, longest overdue
--   first): it walked the next-due index of every case and dropped 32 k rows of other campaigns,
--   reading 30 k heap pages (0.19-0.41 s; 0.3 ms through this index). next_due_at is already
--   indexed (ledger_next_due_idx), so no HOT update is lost either; only campaign cases are in it.
CREATE INDEX ledger_status_received_idx ON ledger (status, received_at, case_id)
    INCLUDE (kind, channel, category_id, village_id, unit_id, urgency, escalated);
CREATE INDEX ledger_campaign_due_idx ON ledger (campaign_id, next_due_at, case_id)
    WHERE campaign_id IS NOT NULL AND next_due_at IS NOT NULL;
