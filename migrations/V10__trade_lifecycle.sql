-- V10: the lifecycle a discipline committee must run (acceptance, sign-for and return, joint
-- handling, recusal, honest clocks, follow-up), and search that finds what a person sees.
--
-- Ledger columns added, each computed in Rust by the same fold as the rest of the row
-- (infra/src/ledger.rs, LedgerRow::from_case):
-- * co_unit_ids: co-units of joint handling (联办); their handlers see the case.
-- * accepted_at, signed_at, returns, solved, rejection_code: facts the KPIs count.
-- * ack_due_at / overall_due_at: the acknowledgement and overall clocks while they run (NULL when
--   stopped or paused); next_due_at / next_due_stage / next_started_at / next_due_soon_at: the
--   running clock that falls due first, which the overdue filter and view read (one index).
-- * paused, calendar_incomplete: a clock stands still, or was counted on weekdays alone into a
--   year whose calendar is not loaded.
-- * search: now the exact lexemes written by Rust (NFKC, CJK unigrams and bigrams, Latin and
--   digit words), built with array_to_tsvector / the tsvector input, never re-parsed.
--
-- The append function now writes the row with jsonb_populate_record(NULL::ledger, …): the
-- column list lives in the table, not in a third copy here; only the columns an update may
-- change are listed.

ALTER TABLE ledger
    ADD COLUMN co_unit_ids         uuid[]      NOT NULL DEFAULT '{}',
    ADD COLUMN accepted_at         timestamptz,
    ADD COLUMN signed_at           timestamptz,
    ADD COLUMN returns             integer     NOT NULL DEFAULT 0,
    ADD COLUMN solved              boolean,
    ADD COLUMN rejection_code      text,
    ADD COLUMN ack_due_at          timestamptz,
    ADD COLUMN overall_due_at      timestamptz,
    ADD COLUMN next_due_at         timestamptz,
    ADD COLUMN next_due_stage      text,
    ADD COLUMN next_started_at     timestamptz,
    ADD COLUMN next_due_soon_at    timestamptz,
    ADD COLUMN paused              boolean     NOT NULL DEFAULT false,
    ADD COLUMN calendar_incomplete boolean     NOT NULL DEFAULT false;

-- Rows written before this migration: the stage clock was their only clock. `huiyin rebuild`
-- recomputes every column exactly (and the search lexemes) from the log.
UPDATE ledger SET next_due_at = due_at, next_due_stage = deadline_stage, next_started_at = started_at,
                  next_due_soon_at = due_soon_at
 WHERE due_at IS NOT NULL;

CREATE INDEX ledger_next_due_idx ON ledger (next_due_at, case_id)
    INCLUDE (next_due_soon_at, next_started_at, next_due_stage, unit_id)
    WHERE next_due_at IS NOT NULL;
CREATE INDEX ledger_co_units_idx ON ledger USING gin (co_unit_ids);
CREATE INDEX ledger_duplicate_of_idx ON ledger (duplicate_of) WHERE duplicate_of IS NOT NULL;
CREATE INDEX ledger_calendar_incomplete_idx ON ledger (case_id) WHERE calendar_incomplete;

-- The years whose State Council calendar notice is loaded (a year may have no exceptional day
-- stored and still be loaded).
CREATE TABLE calendar_years (
    year      integer     PRIMARY KEY CHECK (year BETWEEN 2000 AND 2099),
    loaded_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO calendar_years (year) SELECT DISTINCT extract(year FROM day)::integer FROM calendar_days;
REVOKE ALL ON calendar_years FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON calendar_years TO huiyin_app;

CREATE OR REPLACE FUNCTION append_events(
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
        INSERT INTO ledger AS l
        SELECT * FROM jsonb_populate_record(NULL::ledger, p_ledger || jsonb_build_object('case_id', p_case))
        ON CONFLICT ON CONSTRAINT ledger_pkey DO UPDATE SET
            (version, category_id, village_id, unit_id, urgency, status, round, assigned_at, handled_at,
             fed_back_at, closed_at, deadline_stage, started_at, due_at, due_soon_at, satisfaction, escalated,
             duplicate_of, co_unit_ids, accepted_at, signed_at, returns, solved, rejection_code, ack_due_at,
             overall_due_at, next_due_at, next_due_stage, next_started_at, next_due_soon_at, paused,
             calendar_incomplete)
          = (EXCLUDED.version, EXCLUDED.category_id, EXCLUDED.village_id, EXCLUDED.unit_id, EXCLUDED.urgency,
             EXCLUDED.status, EXCLUDED.round, EXCLUDED.assigned_at, EXCLUDED.handled_at, EXCLUDED.fed_back_at,
             EXCLUDED.closed_at, EXCLUDED.deadline_stage, EXCLUDED.started_at, EXCLUDED.due_at,
             EXCLUDED.due_soon_at, EXCLUDED.satisfaction, EXCLUDED.escalated, EXCLUDED.duplicate_of,
             EXCLUDED.co_unit_ids, EXCLUDED.accepted_at, EXCLUDED.signed_at, EXCLUDED.returns, EXCLUDED.solved,
             EXCLUDED.rejection_code, EXCLUDED.ack_due_at, EXCLUDED.overall_due_at, EXCLUDED.next_due_at,
             EXCLUDED.next_due_stage, EXCLUDED.next_started_at, EXCLUDED.next_due_soon_at, EXCLUDED.paused,
             EXCLUDED.calendar_incomplete)
        -- Title, description (search), kind, channel, receipt and accused unit never change after
        -- registration.
        WHERE l.version < EXCLUDED.version;
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

-- Kept from V3 for compatibility, unused since V9; dropped now that the row has a new shape.
DROP FUNCTION IF EXISTS ledger_upsert(uuid, jsonb);
