-- V32: an append counts the stored search terms' bytes exactly (issue 14).
--
-- V29's append_events() counted the case's stored terms with pg_column_size of the value read
-- from the ledger, which is the stored size: compressed when the terms compress (the suffixes of
-- a long word do, tenfold), or 4 bytes short when stored out of line. The count came out low, so
-- a text that would cross the case's limit (983,040 bytes) was added all the same: the stored
-- terms then differed from a replay's fold, or, past 1 MiB, the append failed ("string is too
-- long for tsvector") and every later append with new terms to that case failed with it. The
-- value is now copied into memory first, where its size is its own. The function is V30's
-- otherwise.

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
    v_new_units uuid[];
    v_active    integer;
    v_search    tsvector;
    v_try       tsvector;
    v_text      text;
    v_have      bigint;
    v_add       bigint;
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
        -- A case handed to a unit (lead or co-unit) that it did not have before goes only to an
        -- active unit. The unit's row is locked FOR SHARE until this transaction ends, so a
        -- deactivation (an UPDATE of that row) either comes first, and this append is refused,
        -- or waits for it, and then sees the case among the unit's open ones.
        -- `handed_to`: the units the new events hand the case to (assigned, transferred, reopened
        -- at, or added as a co-unit), listed by the service beside the row (not a column).
        IF p_ledger ? 'handed_to' THEN
            v_new_units := ARRAY(SELECT DISTINCT x::uuid FROM jsonb_array_elements_text(p_ledger->'handed_to') AS x);
        END IF;
        IF cardinality(v_new_units) > 0 THEN
            SELECT count(*) INTO v_active
              FROM (SELECT 1 FROM units WHERE id = ANY(v_new_units) AND active FOR SHARE) AS s;
            IF v_active <> cardinality(v_new_units) THEN
                RAISE EXCEPTION 'append_events: a unit the case is handed to is deactivated'
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'case_unit_active';
            END IF;
        END IF;

        -- `search_add`: the terms (tsvector input) of each text the new events add to the
        -- history, in order. Each joins the stored terms when the case's distinct terms then take
        -- at most 983,040 bytes (960 KiB: `infra::search::MAX_CASE_TERM_BYTES`; a tsvector without
        -- positions takes 8 bytes of header and 4 a lexeme beside its lexemes' bytes); a text
        -- that would cross it is left out whole. `infra::search::case_tsvector_text` folds a whole
        -- history by the same rule, so the stored value equals a replay's.
        IF p_ledger ? 'search_add' THEN
            SELECT l.search INTO v_search FROM ledger l WHERE l.case_id = p_case;
            -- A copy in memory: pg_column_size of the stored value is its stored size, which
            -- is compressed (terms of long words compress tenfold) or 4 bytes short out of line;
            -- the count below needs the value's own size.
            v_search := coalesce(v_search, ''::tsvector) || ''::tsvector;
            FOR v_text IN SELECT x FROM jsonb_array_elements_text(p_ledger->'search_add') AS x LOOP
                v_try := v_text::tsvector;
                v_have := pg_column_size(v_search) - 8 - 4 * length(v_search);
                IF v_have + pg_column_size(v_try) - 8 - 4 * length(v_try) <= 983040 THEN
                    -- Even with no term in common they fit.
                    v_search := v_search || v_try;
                ELSE
                    -- Near the limit, count the bytes of the terms that are new (concatenating
                    -- first could exceed what a tsvector holds, which raises an error).
                    SELECT coalesce(sum(octet_length(n.x)), 0) INTO v_add
                      FROM (SELECT unnest(tsvector_to_array(v_try)) EXCEPT SELECT unnest(tsvector_to_array(v_search))) AS n(x);
                    IF v_have + v_add <= 983040 THEN
                        v_search := v_search || v_try;
                    END IF;
                END IF;
            END LOOP;
        END IF;

        INSERT INTO ledger AS l
        SELECT * FROM jsonb_populate_record(NULL::ledger, p_ledger || jsonb_build_object('case_id', p_case))
        ON CONFLICT ON CONSTRAINT ledger_pkey DO UPDATE SET
            (version, category_id, village_id, unit_id, urgency, status, round, assigned_at, handled_at,
             fed_back_at, closed_at, deadline_stage, started_at, due_at, due_soon_at, satisfaction, escalated,
             duplicate_of, co_unit_ids, accepted_at, signed_at, returns, solved, rejection_code, ack_due_at,
             overall_due_at, next_due_at, next_due_stage, next_started_at, next_due_soon_at, paused,
             calendar_incomplete, facts, dissatisfied_count, returns_refused, search)
          = (EXCLUDED.version, EXCLUDED.category_id, EXCLUDED.village_id, EXCLUDED.unit_id, EXCLUDED.urgency,
             EXCLUDED.status, EXCLUDED.round, EXCLUDED.assigned_at, EXCLUDED.handled_at, EXCLUDED.fed_back_at,
             EXCLUDED.closed_at, EXCLUDED.deadline_stage, EXCLUDED.started_at, EXCLUDED.due_at,
             EXCLUDED.due_soon_at, EXCLUDED.satisfaction, EXCLUDED.escalated, EXCLUDED.duplicate_of,
             EXCLUDED.co_unit_ids, EXCLUDED.accepted_at, EXCLUDED.signed_at, EXCLUDED.returns, EXCLUDED.solved,
             EXCLUDED.rejection_code, EXCLUDED.ack_due_at, EXCLUDED.overall_due_at, EXCLUDED.next_due_at,
             EXCLUDED.next_due_stage, EXCLUDED.next_started_at, EXCLUDED.next_due_soon_at, EXCLUDED.paused,
             EXCLUDED.calendar_incomplete, EXCLUDED.facts, EXCLUDED.dissatisfied_count, EXCLUDED.returns_refused,
             -- The terms with the new texts' added (above); else an empty search means "unchanged"
             -- (the service sends the whole lexemes at registration only).
             CASE WHEN v_search IS NOT NULL THEN v_search
                  WHEN EXCLUDED.search = ''::tsvector THEN l.search ELSE EXCLUDED.search END)
        -- Title, description, kind, channel, receipt and accused unit never change after
        -- registration.
        WHERE l.version < EXCLUDED.version;
    END IF;

    IF p_ledger IS NOT NULL THEN
        -- Beside the row, the service lists what the same transaction must also write (none of
        -- them a column of the ledger):
        -- `receipt_secret`: the slow hash of the secret a citizen who registered online holds.
        -- `subject_key`: the registration's complainant's wrapped data key (crypto-shredding,
        -- V12), stored with the case that seals data under it: one commit for a registration, and
        -- a retry answered above as a duplicate leaves no key behind.
        IF p_ledger ? 'subject_key' THEN
            INSERT INTO subject_keys (subject_id, kek_id, wrapped_key)
            VALUES ((p_ledger->'subject_key'->>'subject_id')::uuid, p_ledger->'subject_key'->>'kek_id',
                    decode(p_ledger->'subject_key'->>'wrapped_key', 'hex'));
        END IF;
        IF p_ledger ? 'receipt_secret' THEN
            INSERT INTO receipt_secrets (case_id, secret_hash) VALUES (p_case, p_ledger->>'receipt_secret');
        END IF;
        -- `outbox`: the notices the new events owe the citizen; the delivery worker sends them
        -- only once this transaction commits.
        IF p_ledger ? 'outbox' THEN
            INSERT INTO outbox (id, case_id, version, notice, channel, subject)
            SELECT (x->>'id')::uuid, p_case, p_expected + (x->>'event')::integer, x->>'notice', x->>'channel',
                   (x->>'subject')::uuid
              FROM jsonb_array_elements(p_ledger->'outbox') AS x;
        END IF;
        -- `outbox_settled`: the notices whose delivery (or final failure) these events record.
        IF p_ledger ? 'outbox_settled' THEN
            UPDATE outbox o SET state = x->>'state', settled_at = now(), locked_until = NULL
              FROM jsonb_array_elements(p_ledger->'outbox_settled') AS x
             WHERE o.id = (x->>'id')::uuid AND o.state = 'pending';
        END IF;
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
