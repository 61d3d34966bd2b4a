-- V3: the ledger (台账), one row per case, written in the same transaction as the case's events.
--
-- Why in the same transaction: a frontend that got a 2xx for a command must see its effect in
-- the ledger at once (read-your-writes), and a crash can never leave the ledger behind the log.
-- The row is computed in Rust by the same fold the domain uses (infra/src/ledger.rs) and passed
-- to append_events() as JSON; SQL holds no copy of the lifecycle rules.
--
-- Indexes, each for a query of api/src/routes/ledger.rs:
-- * ledger_received_idx: the default page (newest first), received-date ranges, keyset paging,
--   and — with its INCLUDE columns — index-only filtering by the common filters and the
--   GROUPING SETS scan of /stats.
-- * ledger_due_idx: sort by due time and the overdue / due-soon view (running deadlines only).
-- * ledger_search_idx: Chinese full-text search over title and description, segmented by jieba
--   in Rust and stored as space-separated words in a 'simple' tsvector.
-- * ledger_receipt_code_key: citizens look their case up by receipt code; codes are unique.

CREATE TABLE ledger (
    case_id         uuid        PRIMARY KEY,
    version         integer     NOT NULL,
    receipt_code    text        NOT NULL,
    kind            text        NOT NULL,
    channel         text        NOT NULL,
    category_id     uuid,
    village_id      uuid,
    unit_id         uuid,
    accused_unit_id uuid,
    urgency         text        NOT NULL,
    status          text        NOT NULL,
    round           integer     NOT NULL,
    title           text        NOT NULL,
    anonymous       boolean     NOT NULL,
    received_at     timestamptz NOT NULL,
    assigned_at     timestamptz,
    handled_at      timestamptz,
    fed_back_at     timestamptz,
    closed_at       timestamptz,
    deadline_stage  text,
    started_at      timestamptz,
    due_at          timestamptz,
    due_soon_at     timestamptz,
    satisfaction    text,
    escalated       boolean     NOT NULL,
    duplicate_of    uuid,
    search          tsvector    NOT NULL,
    CONSTRAINT ledger_receipt_code_key UNIQUE (receipt_code)
);

CREATE INDEX ledger_received_idx ON ledger (received_at, case_id)
    INCLUDE (status, kind, channel, category_id, village_id, unit_id, urgency, escalated, due_at);
CREATE INDEX ledger_due_idx ON ledger (due_at, case_id)
    INCLUDE (due_soon_at, started_at, deadline_stage, unit_id)
    WHERE due_at IS NOT NULL;
CREATE INDEX ledger_search_idx ON ledger USING gin (search);

REVOKE ALL ON ledger FROM PUBLIC;
GRANT SELECT ON ledger TO huiyin_app;

-- The append function gains the ledger row. The old signature is dropped: the service that
-- calls the new one ships with this migration.
DROP FUNCTION append_events(uuid, integer, text[], smallint[], jsonb[], jsonb[], timestamptz[], bytea, bytea[], text, text, bytea);

CREATE FUNCTION ledger_upsert(p_case uuid, r jsonb) RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
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
$$;

CREATE FUNCTION append_events(
    p_case         uuid,
    p_expected     integer,
    p_types        text[],
    p_schemas      smallint[],
    p_payloads     jsonb[],
    p_metadata     jsonb[],
    p_occurred     timestamptz[],
    p_prev_hash    bytea,
    p_hashes       bytea[],
    p_idem_scope   text,
    p_idem_key     text,
    p_request_hash bytea,
    p_ledger       jsonb
) RETURNS TABLE (outcome text, case_id uuid, first_version integer, last_version integer,
                 first_position bigint, last_position bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_version   integer;
    v_head      bytea;
    v_first_pos bigint;
    v_last_pos  bigint;
    v_n         integer := cardinality(p_types);
    r           idempotency_keys%ROWTYPE;
BEGIN
    -- First statement: serialise appends to this case before any transaction id is assigned.
    PERFORM pg_advisory_xact_lock(hashtextextended(p_case::text, 0));

    IF p_idem_key IS NOT NULL THEN
        SELECT * INTO r FROM idempotency_keys k WHERE k.scope = p_idem_scope AND k.key = p_idem_key;
        IF FOUND THEN
            RETURN QUERY SELECT CASE WHEN r.request_hash = p_request_hash THEN 'duplicate' ELSE 'mismatch' END,
                                r.case_id, r.first_version, r.last_version, NULL::bigint, NULL::bigint;
            RETURN;
        END IF;
    END IF;

    IF v_n IS NULL OR v_n = 0 OR v_n <> cardinality(p_schemas) OR v_n <> cardinality(p_payloads)
       OR v_n <> cardinality(p_metadata) OR v_n <> cardinality(p_occurred) OR v_n <> cardinality(p_hashes) THEN
        RAISE EXCEPTION 'append_events: the event arrays must be non-empty and of equal length'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT e.version, e.hash INTO v_version, v_head
      FROM events e WHERE e.case_id = p_case ORDER BY e.version DESC LIMIT 1;
    v_version := coalesce(v_version, 0);
    v_head := coalesce(v_head, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);

    IF v_version <> p_expected THEN
        RETURN QUERY SELECT 'conflict'::text, p_case, v_version, v_version, NULL::bigint, NULL::bigint;
        RETURN;
    END IF;
    IF v_head <> p_prev_hash THEN
        RAISE EXCEPTION 'append_events: prev_hash does not match the head of case %', p_case
            USING ERRCODE = 'data_exception';
    END IF;

    WITH ins AS (
        INSERT INTO events (case_id, version, event_type, schema_version, payload, metadata,
                            occurred_at, prev_hash, hash)
        SELECT p_case, p_expected + u.i::integer, u.t, u.s, u.p, u.m, u.o,
               CASE WHEN u.i = 1 THEN p_prev_hash ELSE p_hashes[u.i - 1] END, u.h
          FROM unnest(p_types, p_schemas, p_payloads, p_metadata, p_occurred, p_hashes)
               WITH ORDINALITY AS u(t, s, p, m, o, h, i)
         ORDER BY u.i
        RETURNING events.position
    )
    SELECT min(ins.position), max(ins.position) INTO v_first_pos, v_last_pos FROM ins;

    IF p_ledger IS NOT NULL THEN
        PERFORM ledger_upsert(p_case, p_ledger);
    END IF;

    IF p_idem_key IS NOT NULL THEN
        -- A concurrent request with the same key on another case raises unique_violation here;
        -- the whole append rolls back and the caller retries, then finds the key.
        INSERT INTO idempotency_keys (scope, key, request_hash, case_id, first_version, last_version)
        VALUES (p_idem_scope, p_idem_key, p_request_hash, p_case, p_expected + 1, p_expected + v_n);
    END IF;

    RETURN QUERY SELECT 'appended'::text, p_case, p_expected + 1, p_expected + v_n, v_first_pos, v_last_pos;
END
$$;

REVOKE ALL ON FUNCTION append_events(uuid, integer, text[], smallint[], jsonb[], jsonb[], timestamptz[], bytea, bytea[], text, text, bytea, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_upsert(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION append_events(uuid, integer, text[], smallint[], jsonb[], jsonb[], timestamptz[], bytea, bytea[], text, text, bytea, jsonb) TO huiyin_app;
