-- V39: the open cases a unit leads, by unit. Two reads asked for them by walking every assigned
-- and handled case (EXPLAIN ANALYZE at a million cases, BENCHMARKS.md):
-- * the look for cases stranded at deactivated units (`Ledger::cases_at_inactive_units`), which
--   every instance runs every 15 s once any unit has been deactivated: 76 k rows through the
--   status index, 4.0 s;
-- * the cases a unit would strand if deactivated (`Ledger::open_cases_of_unit`).
-- With this index the lead unit's side is an index scan; the co-units' side uses the GIN index
-- on co_unit_ids (V1) and the two are OR-ed as bitmaps. unit_id and status are already in
-- ledger_status_received_idx (V33), so no update that was HOT stops being HOT.
CREATE INDEX ledger_open_unit_idx ON ledger (unit_id) WHERE status IN ('assigned', 'handled');
