-- V1: the append-only event log, the idempotency record and the personal-data key vault.
--
-- Why this shape (see ARCHITECTURE.md, "Event store"):
-- * One table holds every event of every case. `position` is a global identity, but identity
--   values become visible in commit order, not in sequence order, so the integrator feed reads
--   by (tx_id, position) and only below the oldest running transaction
--   (pg_snapshot_xmin(pg_current_snapshot())): a reader can never skip an event that commits
--   late. `tx_id` is the writing transaction's id, recorded by default.
-- * Appends go through one SECURITY DEFINER function, append_events(): one round trip that
--   takes the case's advisory lock first (before anything assigns a transaction id, so per-case
--   order in the feed equals version order), checks the expected version, inserts and records
--   the idempotency key. The application role can call it and SELECT; it cannot INSERT,
--   UPDATE, DELETE or TRUNCATE the log directly.
-- * Triggers refuse UPDATE, DELETE (per row) and TRUNCATE (per statement) even for the owner.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'huiyin_app') THEN
        -- The service's role. Deployments give it LOGIN (and a password); it owns nothing.
        CREATE ROLE huiyin_app NOLOGIN;
    END IF;
END
$$;

CREATE TABLE events (
    position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id        uuid        NOT NULL,
    version        integer     NOT NULL CHECK (version > 0),
    event_type     text        NOT NULL CHECK (length(event_type) BETWEEN 1 AND 100),
    schema_version smallint    NOT NULL CHECK (schema_version > 0),
    payload        jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    tx_id          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    prev_hash      bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash           bytea       NOT NULL CHECK (length(hash) = 32),
    -- The backstop of optimistic concurrency: two writers can never both get a version.
    CONSTRAINT events_case_version_key UNIQUE (case_id, version)
);

-- The feed's order. Row comparison (tx_id, position) > ($1, $2) uses it.
CREATE INDEX events_feed_idx ON events (tx_id, position);

COMMENT ON TABLE events IS 'Append-only log of every case event; see ARCHITECTURE.md';

CREATE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on events is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Statement-level, so it fires even for an UPDATE or DELETE that matches no row (a row trigger
-- would not), and for TRUNCATE (which row triggers never see).
CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- Idempotency keys are scoped by the caller (the token's subject), so two clients cannot
-- collide. The request hash tells a retry (same body) from a misuse (another body).
CREATE TABLE idempotency_keys (
    scope        text        NOT NULL CHECK (length(scope) BETWEEN 1 AND 200),
    key          text        NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    request_hash bytea       NOT NULL,
    case_id      uuid        NOT NULL,
    first_version integer    NOT NULL,
    last_version integer     NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, key)
);

-- Personal data never enters the log in clear: events carry ciphertext under a per-subject
-- data key, stored here wrapped by the key-encryption key from configuration. Erasure sets
-- wrapped_key to NULL (crypto-shredding); the log and its hash chain stay untouched.
CREATE TABLE subject_keys (
    subject_id  uuid        PRIMARY KEY,
    kek_id      text        NOT NULL,
    wrapped_key bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    erased_at   timestamptz,
    CHECK ((wrapped_key IS NULL) = (erased_at IS NOT NULL))
);

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
    p_request_hash bytea
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

    IF p_idem_key IS NOT NULL THEN
        -- A concurrent request with the same key on another case raises unique_violation here;
        -- the whole append rolls back and the caller retries, then finds the key.
        INSERT INTO idempotency_keys (scope, key, request_hash, case_id, first_version, last_version)
        VALUES (p_idem_scope, p_idem_key, p_request_hash, p_case, p_expected + 1, p_expected + v_n);
    END IF;

    RETURN QUERY SELECT 'appended'::text, p_case, p_expected + 1, p_expected + v_n, v_first_pos, v_last_pos;
END
$$;

REVOKE ALL ON events, idempotency_keys, subject_keys FROM PUBLIC;
REVOKE ALL ON FUNCTION append_events(uuid, integer, text[], smallint[], jsonb[], jsonb[], timestamptz[], bytea, bytea[], text, text, bytea) FROM PUBLIC;
GRANT SELECT ON events, idempotency_keys TO huiyin_app;
GRANT SELECT, INSERT ON subject_keys TO huiyin_app;
GRANT UPDATE (wrapped_key, erased_at) ON subject_keys TO huiyin_app;
GRANT EXECUTE ON FUNCTION append_events(uuid, integer, text[], smallint[], jsonb[], jsonb[], timestamptz[], bytea, bytea[], text, text, bytea) TO huiyin_app;
