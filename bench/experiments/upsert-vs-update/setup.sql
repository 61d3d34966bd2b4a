
DROP TABLE IF EXISTS exp_ids;
CREATE TABLE exp_ids AS SELECT row_number() OVER (ORDER BY case_id) AS n, case_id FROM ledger;
CREATE UNIQUE INDEX ON exp_ids (n);
ANALYZE exp_ids;

-- The row each variant writes: the stored row, one version on (what the service sends for an
-- append to an existing case, without search terms: an empty search means "unchanged").
CREATE OR REPLACE FUNCTION exp_row(p_n bigint, OUT c uuid, OUT j jsonb) LANGUAGE plpgsql AS $$
BEGIN
  SELECT i.case_id INTO c FROM exp_ids i WHERE i.n = p_n;
  PERFORM pg_advisory_xact_lock(hashtextextended(c::text, 0));
  SELECT to_jsonb(l) - 'case_id' || '{"search": ""}' INTO j FROM ledger l WHERE l.case_id = c;
  j := jsonb_set(j, '{version}', to_jsonb((j->>'version')::int + 1));
END $$;

CREATE OR REPLACE FUNCTION exp_upsert(p_n bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE c uuid; j jsonb;
BEGIN
  SELECT * INTO c, j FROM exp_row(p_n);
  INSERT INTO ledger AS l SELECT * FROM jsonb_populate_record(NULL::ledger, j || jsonb_build_object('case_id', c))
  ON CONFLICT ON CONSTRAINT ledger_pkey DO UPDATE SET (version, category_id, village_id, unit_id, urgency, status, round, assigned_at, handled_at, fed_back_at, closed_at, deadline_stage, started_at, due_at, due_soon_at, satisfaction, escalated, duplicate_of, co_unit_ids, accepted_at, signed_at, returns, solved, rejection_code, ack_due_at, overall_due_at, next_due_at, next_due_stage, next_started_at, next_due_soon_at, paused, calendar_incomplete, facts, dissatisfied_count, returns_refused) = (EXCLUDED.version, EXCLUDED.category_id, EXCLUDED.village_id, EXCLUDED.unit_id, EXCLUDED.urgency, EXCLUDED.status, EXCLUDED.round, EXCLUDED.assigned_at, EXCLUDED.handled_at, EXCLUDED.fed_back_at, EXCLUDED.closed_at, EXCLUDED.deadline_stage, EXCLUDED.started_at, EXCLUDED.due_at, EXCLUDED.due_soon_at, EXCLUDED.satisfaction, EXCLUDED.escalated, EXCLUDED.duplicate_of, EXCLUDED.co_unit_ids, EXCLUDED.accepted_at, EXCLUDED.signed_at, EXCLUDED.returns, EXCLUDED.solved, EXCLUDED.rejection_code, EXCLUDED.ack_due_at, EXCLUDED.overall_due_at, EXCLUDED.next_due_at, EXCLUDED.next_due_stage, EXCLUDED.next_started_at, EXCLUDED.next_due_soon_at, EXCLUDED.paused, EXCLUDED.calendar_incomplete, EXCLUDED.facts, EXCLUDED.dissatisfied_count, EXCLUDED.returns_refused)
  WHERE l.version < EXCLUDED.version;
END $$;

CREATE OR REPLACE FUNCTION exp_update(p_n bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE c uuid; j jsonb;
BEGIN
  SELECT * INTO c, j FROM exp_row(p_n);
  UPDATE ledger l SET (version, category_id, village_id, unit_id, urgency, status, round, assigned_at, handled_at, fed_back_at, closed_at, deadline_stage, started_at, due_at, due_soon_at, satisfaction, escalated, duplicate_of, co_unit_ids, accepted_at, signed_at, returns, solved, rejection_code, ack_due_at, overall_due_at, next_due_at, next_due_stage, next_started_at, next_due_soon_at, paused, calendar_incomplete, facts, dissatisfied_count, returns_refused) = (r.version, r.category_id, r.village_id, r.unit_id, r.urgency, r.status, r.round, r.assigned_at, r.handled_at, r.fed_back_at, r.closed_at, r.deadline_stage, r.started_at, r.due_at, r.due_soon_at, r.satisfaction, r.escalated, r.duplicate_of, r.co_unit_ids, r.accepted_at, r.signed_at, r.returns, r.solved, r.rejection_code, r.ack_due_at, r.overall_due_at, r.next_due_at, r.next_due_stage, r.next_started_at, r.next_due_soon_at, r.paused, r.calendar_incomplete, r.facts, r.dissatisfied_count, r.returns_refused)
    FROM jsonb_populate_record(NULL::ledger, j) r
   WHERE l.case_id = c AND l.version < r.version;
END $$;

-- Only the reading of the row (the floor both share).
CREATE OR REPLACE FUNCTION exp_read(p_n bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE c uuid; j jsonb;
BEGIN
  SELECT * INTO c, j FROM exp_row(p_n);
END $$;
