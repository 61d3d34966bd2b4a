-- V8: ledger_upsert() in PL/pgSQL instead of SQL. A SECURITY DEFINER SQL function cannot be
-- inlined, so PostgreSQL parsed and planned its 27-column upsert on every append; PL/pgSQL keeps
-- the plan for the session. Same statement, same behaviour.

CREATE OR REPLACE FUNCTION ledger_upsert(p_case uuid, r jsonb) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    INSERT INTO ledger AS l (case_id, version, receipt_code, kind, channel, category_id, village_id, unit_id,
        accused_unit_id, urgency, status, round, title, anonymous, received_at, assigned_at, handled_at,
        fed_back_at, closed_at, deadline_stage, started_at, due_at, due_soon_at, satisfaction, escalated,
        duplicate_of, search)
    VALUES (p_case, (r->>'version')::integer, r->>'receipt_code', r->>'kind', r->>'channel',
        (r->>'category_id')::uuid, (r->>'village_id')::uuid, (r->>'unit_id')::uuid, (r->>'accused_unit_id')::uuid,
        r->>'urgency', r->>'status', (r->>'round')::integer, r->>'title', (r->>'anonymous')::boolean,
        (r->>'received_at')::timestamptz, (r->>'assigned_at')::timestamptz, (r->>'handled_at')::timestamptz,
        (r->>'fed_back_at')::timestamptz, (r->>'closed_at')::timestamptz, r->>'deadline_stage',
        (r->>'started_at')::timestamptz, (r->>'due_at')::timestamptz, (r->>'due_soon_at')::timestamptz,
        r->>'satisfaction', (r->>'escalated')::boolean, (r->>'duplicate_of')::uuid,
        to_tsvector('simple', coalesce(r->>'search_text', '')))
    ON CONFLICT (case_id) DO UPDATE SET
        version = EXCLUDED.version, category_id = EXCLUDED.category_id, village_id = EXCLUDED.village_id,
        unit_id = EXCLUDED.unit_id, urgency = EXCLUDED.urgency, status = EXCLUDED.status, round = EXCLUDED.round,
        assigned_at = EXCLUDED.assigned_at, handled_at = EXCLUDED.handled_at, fed_back_at = EXCLUDED.fed_back_at,
        closed_at = EXCLUDED.closed_at, deadline_stage = EXCLUDED.deadline_stage, started_at = EXCLUDED.started_at,
        due_at = EXCLUDED.due_at, due_soon_at = EXCLUDED.due_soon_at, satisfaction = EXCLUDED.satisfaction,
        escalated = EXCLUDED.escalated, duplicate_of = EXCLUDED.duplicate_of
    -- Title, description (search), kind, channel and receipt never change after registration.
    WHERE l.version < EXCLUDED.version;
END
$$;
