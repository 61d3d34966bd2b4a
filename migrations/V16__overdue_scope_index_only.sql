-- V16: the overdue view of one unit reads only the next-due index. A handler's scope (and a
-- supervisor's unit filter) tests `co_unit_ids` and `accused_unit_id` as well as `unit_id`
-- (V10's 回避 rule); without them in the index, counting a unit's late cases fetched every
-- late case's heap row (about 1 s at a million cases). `accused_unit_id` is set at registration
-- only, and `co_unit_ids` is already indexed (GIN), so updates that were HOT stay HOT.
DROP INDEX ledger_next_due_idx;
CREATE INDEX ledger_next_due_idx ON ledger (next_due_at, case_id)
    INCLUDE (next_due_soon_at, next_started_at, next_due_stage, unit_id, co_unit_ids, accused_unit_id)
    WHERE next_due_at IS NOT NULL;
