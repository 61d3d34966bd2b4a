-- V37: coalesced appends written set-based (issue 14).
--
-- V5's append_batch(jsonb) took its items as one jsonb document and called append_events() once
-- per item: every item paid the function call, its statements' set-up (executor start, the
-- ledger's check constraints and trigger conditions parsed again, indexes opened) and the jsonb
-- decoding of its arrays, and the batch saved only commits. Measured, it was from slower to
-- somewhat faster than one transaction per append.
--
-- This append_batch() takes typed arrays (one element per item, the events flattened in item
-- order) and writes each table once for the whole batch: one head read, one events INSERT, one
-- ledger upsert, one statement per side table an item needs. The checks and outcomes are
-- append_events()'s (V32), item by item:
--   * every case's advisory lock first, in sorted order, before any write assigns the
--     transaction id (two batches never deadlock; per-case feed order equals version order);
--   * an idempotency key seen before answers 'duplicate' (same request hash) or 'mismatch', and
--     writes nothing for that item;
--   * a version other than the expected one answers 'conflict' and writes nothing for it;
--   * anything that append_events() raises (a head other than prev_hash, a unit handed the case
--     that is deactivated, an idempotency key taken meanwhile) fails the whole batch; the service
--     then appends the items one by one with append_events(), so the error reaches its own item
--     only.
-- The cases of one batch must be distinct (the service sends a later append to a case already in
-- the batch on its own, after the batch, and does the same with a repeated idempotency key, which
-- would otherwise fail the batch); a batch that repeats a case is refused.
--
-- Parameters, n items and m events (m = the sum of p_counts):
--   p_cases, p_expected, p_prev_hashes, p_counts          n each; p_counts[i] >= 1 events of item i
--   p_types, p_schemas, p_payloads, p_metadata,
--   p_occurred, p_hashes                                  m each, item 1's events first
--   p_idem_scopes, p_idem_keys, p_request_hashes          n each, NULL where the item has no key
--   p_ledgers                                             n, the ledger row and what goes beside it
--                                                         (append_events()'s p_ledger), or NULL
-- Answers one row per item: idx (0-based, the item's place), then append_events()'s columns.
--
-- The ledger upsert's column list and the search terms' rule are append_events()'s, written again
-- here set-based: a later migration that changes either must change both functions (the tests'
-- replay check, `verify_projections`, runs on both paths).

DROP FUNCTION append_batch(jsonb);

CREATE FUNCTION append_batch(
    p_cases          uuid[],
    p_expected       integer[],
    p_prev_hashes    bytea[],
    p_counts         integer[],
    p_types          text[],
    p_schemas        smallint[],
    p_payloads       jsonb[],
    p_metadata       jsonb[],
    p_occurred       timestamptz[],
    p_hashes         bytea[],
    p_idem_scopes    text[],
    p_idem_keys      text[],
    p_request_hashes bytea[],
    p_ledgers        jsonb[]
) RETURNS TABLE (idx integer, outcome text, case_id uuid, first_version integer, last_version integer,
                 first_position bigint, last_position bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_n         integer := cardinality(p_cases);
    v_m         integer := cardinality(p_types);
    v_outcome   text[];
    v_ok        boolean[];
    v_case      uuid[];
    v_first     integer[];
    v_last      integer[];
    v_fpos      bigint[];
    v_lpos      bigint[];
    -- No variable is of a type derived from the ledger table: a rebuild replaces that table
    -- (DROP, then RENAME), and a session's compiled copy of this function would keep the dropped
    -- array type. Rows are built inside statements, which are planned again after it.
    v_searches  tsvector[];
    v_i         integer;
    r           record;
    v_new_units uuid[];
    v_active    integer;
    v_search    tsvector;
    v_try       tsvector;
    v_text      text;
    v_have      bigint;
    v_add       bigint;
    v_keys      boolean := cardinality(array_remove(p_idem_keys, NULL)) > 0;
    v_rows      boolean;
    v_outbox    boolean;
    v_settled   boolean;
    v_subject   boolean;
    v_receipt   boolean;
BEGIN
    -- First statement: serialise appends to these cases before any transaction id is assigned.
    PERFORM pg_advisory_xact_lock(k)
       FROM (SELECT DISTINCT hashtextextended(c::text, 0) AS k FROM unnest(p_cases) AS c ORDER BY 1) AS locks;

    IF v_n IS NULL OR v_n = 0 OR v_n IS DISTINCT FROM cardinality(p_expected)
       OR v_n IS DISTINCT FROM cardinality(p_prev_hashes) OR v_n IS DISTINCT FROM cardinality(p_counts)
       OR v_n IS DISTINCT FROM cardinality(p_idem_scopes) OR v_n IS DISTINCT FROM cardinality(p_idem_keys)
       OR v_n IS DISTINCT FROM cardinality(p_request_hashes) OR v_n IS DISTINCT FROM cardinality(p_ledgers)
       OR v_m IS NULL OR v_m IS DISTINCT FROM cardinality(p_schemas) OR v_m IS DISTINCT FROM cardinality(p_payloads)
       OR v_m IS DISTINCT FROM cardinality(p_metadata) OR v_m IS DISTINCT FROM cardinality(p_occurred)
       OR v_m IS DISTINCT FROM cardinality(p_hashes)
       OR array_position(p_counts, NULL) IS NOT NULL
       OR EXISTS (SELECT 1 FROM unnest(p_counts) AS c WHERE c < 1)
       OR (SELECT sum(c) FROM unnest(p_counts) AS c) <> v_m
       OR (SELECT count(DISTINCT c) FROM unnest(p_cases) AS c) <> v_n THEN
        RAISE EXCEPTION 'append_batch: the item arrays must be non-empty and of equal length, each item''s events '
                        'at least one and counted in p_counts, and the cases distinct'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_outcome := array_fill(NULL::text, ARRAY[v_n]);
    v_ok := array_fill(false, ARRAY[v_n]);
    v_case := p_cases;
    v_first := array_fill(NULL::integer, ARRAY[v_n]);
    v_last := array_fill(NULL::integer, ARRAY[v_n]);
    v_fpos := array_fill(NULL::bigint, ARRAY[v_n]);
    v_lpos := array_fill(NULL::bigint, ARRAY[v_n]);

    IF v_keys THEN
        FOR r IN SELECT u.i::integer AS i, k.request_hash = u.h AS same, k.case_id, k.first_version, k.last_version
                   FROM unnest(p_idem_scopes, p_idem_keys, p_request_hashes) WITH ORDINALITY AS u(s, key, h, i)
                   JOIN idempotency_keys k ON k.scope = u.s AND k.key = u.key LOOP
            v_outcome[r.i] := CASE WHEN r.same THEN 'duplicate' ELSE 'mismatch' END;
            v_case[r.i] := r.case_id;
            v_first[r.i] := r.first_version;
            v_last[r.i] := r.last_version;
        END LOOP;
    END IF;

    FOR r IN SELECT u.i::integer AS i, coalesce(h.version, 0) AS version,
                    coalesce(h.hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea) AS head
               FROM unnest(p_cases) WITH ORDINALITY AS u(c, i)
               LEFT JOIN LATERAL (SELECT e.version, e.hash FROM events e WHERE e.case_id = u.c
                                   ORDER BY e.version DESC LIMIT 1) AS h ON true LOOP
        CONTINUE WHEN v_outcome[r.i] IS NOT NULL;
        IF r.version <> p_expected[r.i] THEN
            v_outcome[r.i] := 'conflict';
            v_first[r.i] := r.version;
            v_last[r.i] := r.version;
            CONTINUE;
        END IF;
        IF r.head <> p_prev_hashes[r.i] THEN
            RAISE EXCEPTION 'append_batch: prev_hash does not match the head of case %', p_cases[r.i]
                USING ERRCODE = 'data_exception';
        END IF;
        v_outcome[r.i] := 'appended';
        v_ok[r.i] := true;
        v_first[r.i] := p_expected[r.i] + 1;
        v_last[r.i] := p_expected[r.i] + p_counts[r.i];
    END LOOP;

    IF NOT (true = ANY(v_ok)) THEN
        RETURN QUERY SELECT u.i::integer - 1, v_outcome[u.i], v_case[u.i], v_first[u.i], v_last[u.i],
                            NULL::bigint, NULL::bigint
                       FROM generate_series(1, v_n) AS u(i);
        RETURN;
    END IF;

    -- The events of every item that passed, in item order and, within an item, in version order:
    -- positions (an identity) follow that order, so a case's feed order is its version order.
    FOR r IN WITH item AS (
                 SELECT c.i::integer AS i, c.n,
                        (sum(c.n) OVER (ORDER BY c.i) - c.n)::integer AS before
                   FROM unnest(p_counts) WITH ORDINALITY AS c(n, i)
             ), ev AS (
                 SELECT item.i, j, item.before + j AS f
                   FROM item, generate_series(1, item.n) AS j
                  WHERE v_ok[item.i]
             ), ins AS (
                 INSERT INTO events (case_id, version, event_type, schema_version, payload, metadata,
                                     occurred_at, prev_hash, hash)
                 SELECT p_cases[ev.i], p_expected[ev.i] + ev.j, u.t, u.s, u.p, u.m, u.o,
                        CASE WHEN ev.j = 1 THEN p_prev_hashes[ev.i] ELSE p_hashes[ev.f - 1] END, u.h
                   FROM ev
                   JOIN unnest(p_types, p_schemas, p_payloads, p_metadata, p_occurred, p_hashes)
                        WITH ORDINALITY AS u(t, s, p, m, o, h, f) ON u.f = ev.f
                  ORDER BY ev.f
                 RETURNING events.case_id, events.position
             )
             SELECT ins.case_id, min(ins.position) AS fpos, max(ins.position) AS lpos
               FROM ins GROUP BY ins.case_id LOOP
        v_i := array_position(p_cases, r.case_id);
        v_fpos[v_i] := r.fpos;
        v_lpos[v_i] := r.lpos;
    END LOOP;

    -- A case handed to a unit it did not have before goes only to an active unit, which stays
    -- locked FOR SHARE until the transaction ends (V13, as append_events()).
    v_new_units := ARRAY(SELECT DISTINCT x::uuid
                           FROM unnest(p_ledgers) WITH ORDINALITY AS u(lg, i),
                                jsonb_array_elements_text(u.lg->'handed_to') AS x
                          WHERE v_ok[u.i] AND u.lg ? 'handed_to');
    IF cardinality(v_new_units) > 0 THEN
        SELECT count(*) INTO v_active
          FROM (SELECT 1 FROM units WHERE id = ANY(v_new_units) AND active FOR SHARE) AS s;
        IF v_active <> cardinality(v_new_units) THEN
            RAISE EXCEPTION 'append_batch: a unit the case is handed to is deactivated'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'case_unit_active';
        END IF;
    END IF;

    SELECT coalesce(bool_or(u.lg IS NOT NULL), false), coalesce(bool_or(u.lg ? 'outbox'), false),
           coalesce(bool_or(u.lg ? 'outbox_settled'), false), coalesce(bool_or(u.lg ? 'subject_key'), false),
           coalesce(bool_or(u.lg ? 'receipt_secret'), false)
      INTO v_rows, v_outbox, v_settled, v_subject, v_receipt
      FROM unnest(p_ledgers) WITH ORDINALITY AS u(lg, i)
     WHERE v_ok[u.i];

    -- The search terms of each passing item that adds texts to the history: the stored terms
    -- with its texts' added by V32's rule (a text that would take the case's distinct terms past
    -- 983,040 bytes is left out whole), so the stored value equals a replay's fold.
    v_searches := array_fill(NULL::tsvector, ARRAY[v_n]);
    FOR r IN SELECT u.i::integer AS i, u.lg, l.search AS stored
               FROM unnest(p_ledgers) WITH ORDINALITY AS u(lg, i)
               LEFT JOIN ledger l ON l.case_id = p_cases[u.i]
              WHERE v_ok[u.i] AND u.lg ? 'search_add' LOOP
        -- A copy in memory, whose size is its own (V32).
        v_search := coalesce(r.stored, ''::tsvector) || ''::tsvector;
        FOR v_text IN SELECT x FROM jsonb_array_elements_text(r.lg->'search_add') AS x LOOP
            v_try := v_text::tsvector;
            v_have := pg_column_size(v_search) - 8 - 4 * length(v_search);
            IF v_have + pg_column_size(v_try) - 8 - 4 * length(v_try) <= 983040 THEN
                v_search := v_search || v_try;
            ELSE
                SELECT coalesce(sum(octet_length(n.x)), 0) INTO v_add
                  FROM (SELECT unnest(tsvector_to_array(v_try)) EXCEPT SELECT unnest(tsvector_to_array(v_search))) AS n(x);
                IF v_have + v_add <= 983040 THEN
                    v_search := v_search || v_try;
                END IF;
            END IF;
        END LOOP;
        v_searches[r.i] := v_search;
    END LOOP;

    IF v_rows THEN
        INSERT INTO ledger AS l
        SELECT lr.*
          FROM unnest(p_ledgers) WITH ORDINALITY AS u(lg, i)
         CROSS JOIN LATERAL jsonb_populate_record(NULL::ledger, u.lg || jsonb_build_object('case_id', p_cases[u.i])) AS lr
         WHERE v_ok[u.i] AND u.lg IS NOT NULL
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
             -- The terms computed above for the item of this case; else an empty search means
             -- "unchanged" (the service sends the whole lexemes at registration only). As in
             -- append_events(), a new row (no stored one) takes the search it was sent.
             coalesce(v_searches[array_position(p_cases, EXCLUDED.case_id)],
                      CASE WHEN EXCLUDED.search = ''::tsvector THEN l.search ELSE EXCLUDED.search END))
        -- Title, description, kind, channel, receipt and accused unit never change after
        -- registration.
        WHERE l.version < EXCLUDED.version;
    END IF;

    -- What goes beside the rows, as append_events() writes it (V19, V29, V30).
    IF v_subject THEN
        INSERT INTO subject_keys (subject_id, kek_id, wrapped_key)
        SELECT (u.lg->'subject_key'->>'subject_id')::uuid, u.lg->'subject_key'->>'kek_id',
               decode(u.lg->'subject_key'->>'wrapped_key', 'hex')
          FROM unnest(p_ledgers) WITH ORDINALITY AS u(lg, i)
         WHERE v_ok[u.i] AND u.lg ? 'subject_key';
    END IF;
    IF v_receipt THEN
        INSERT INTO receipt_secrets (case_id, secret_hash)
        SELECT p_cases[u.i], u.lg->>'receipt_secret'
          FROM unnest(p_ledgers) WITH ORDINALITY AS u(lg, i)
         WHERE v_ok[u.i] AND u.lg ? 'receipt_secret';
    END IF;
    IF v_outbox THEN
        INSERT INTO outbox (id, case_id, version, notice, channel, subject)
        SELECT (x->>'id')::uuid, p_cases[u.i], p_expected[u.i] + (x->>'event')::integer, x->>'notice',
               x->>'channel', (x->>'subject')::uuid
          FROM unnest(p_ledgers) WITH ORDINALITY AS u(lg, i), jsonb_array_elements(u.lg->'outbox') AS x
         WHERE v_ok[u.i] AND u.lg ? 'outbox';
    END IF;
    IF v_settled THEN
        UPDATE outbox o SET state = s.x->>'state', settled_at = now(), locked_until = NULL
          FROM (SELECT x FROM unnest(p_ledgers) WITH ORDINALITY AS u(lg, i),
                              jsonb_array_elements(u.lg->'outbox_settled') AS x
                 WHERE v_ok[u.i] AND u.lg ? 'outbox_settled') AS s
         WHERE o.id = (s.x->>'id')::uuid AND o.state = 'pending';
    END IF;

    IF v_keys THEN
        -- A concurrent request with the same key raises unique_violation here; the batch rolls
        -- back and the service appends its items one by one, and that item then finds the key.
        INSERT INTO idempotency_keys (scope, key, request_hash, case_id, first_version, last_version)
        SELECT u.s, u.key, u.h, p_cases[u.i], p_expected[u.i] + 1, p_expected[u.i] + p_counts[u.i]
          FROM unnest(p_idem_scopes, p_idem_keys, p_request_hashes) WITH ORDINALITY AS u(s, key, h, i)
         WHERE v_ok[u.i] AND u.key IS NOT NULL;
    END IF;

    RETURN QUERY SELECT u.i::integer - 1, v_outcome[u.i], v_case[u.i], v_first[u.i], v_last[u.i],
                        v_fpos[u.i], v_lpos[u.i]
                   FROM generate_series(1, v_n) AS u(i);
END
$$;

REVOKE ALL ON FUNCTION append_batch(uuid[], integer[], bytea[], integer[], text[], smallint[], jsonb[], jsonb[],
                                    timestamptz[], bytea[], text[], text[], bytea[], jsonb[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION append_batch(uuid[], integer[], bytea[], integer[], text[], smallint[], jsonb[], jsonb[],
                                       timestamptz[], bytea[], text[], text[], bytea[], jsonb[]) TO huiyin_app;
