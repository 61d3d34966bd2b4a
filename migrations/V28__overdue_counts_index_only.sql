-- V28: the overdue view's counts read only the next-due index. They test every running clock
-- of every case past 60 % of a deadline (the stage's, the acknowledgement's, the overall one),
-- so the index carries each clock's start and due time and whether the stage's is paused. At a
-- million cases the counts fetched 80 k heap rows (1.5–2 s with a cold cache); index-only they
-- take about a tenth of that. The new columns are indexed elsewhere or change with the status
-- (already in the received-date index), so no HOT update is lost but a pause's.
DROP INDEX ledger_next_due_idx;
CREATE INDEX ledger_next_due_idx ON ledger (next_due_at, case_id)
    INCLUDE (next_due_soon_at, next_started_at, next_due_stage, unit_id, co_unit_ids, accused_unit_id,
             deadline_stage, started_at, paused, due_at, received_at, ack_due_at, accepted_at, overall_due_at)
    WHERE next_due_at IS NOT NULL;
