-- V19: the citizen's side and the integrator's (issue 12).
--
-- * `receipt_secrets`: a citizen who registers online gets a secret shown once; only its slow
--   hash (Argon2id, PHC string) is kept, written by append_events() in the registration's
--   transaction. The app role reads it and writes nothing.
-- * `outbox`: notices owed to citizens, written by append_events() in the transaction of the
--   events that owe them, so no notice exists (and none leaves) before that transaction commits.
--   The delivery worker claims due items (attempts, next_attempt_at, locked_until) and settles
--   each in the transaction of the event that records its delivery or final failure
--   (`outbox_settled`). Contacts are not here: the subject's sealed data is opened at send time.
-- * `notice_templates`: the text of each notice per channel, in Chinese, editable by admins.
-- * `webhook_endpoints`: integrators' receivers, each following the gap-free feed from its own
--   cursor; `webhook_disablements` records why an endpoint was disabled.
-- * `open311_keys`: Open311 api_keys (SHA-256 of the key kept), each scoped to a channel.
-- * `categories.attributes`: the extra fields a category asks for (Open311 service
--   definitions).

CREATE TABLE receipt_secrets (
    case_id     uuid PRIMARY KEY,
    secret_hash text NOT NULL CHECK (secret_hash LIKE '$argon2id$%')
);
REVOKE ALL ON receipt_secrets FROM PUBLIC;
GRANT SELECT ON receipt_secrets TO huiyin_app;

CREATE TABLE outbox (
    id              uuid        PRIMARY KEY,
    case_id         uuid        NOT NULL,
    -- The version of the event that owes the notice.
    version         integer     NOT NULL CHECK (version >= 1),
    notice          text        NOT NULL
                    CHECK (notice IN ('acknowledgement', 'reply', 'follow_up_request', 'question', 'extension')),
    channel         text        NOT NULL CHECK (channel IN ('sms', 'email')),
    subject         uuid        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A worker that claimed the item holds it until then; a crashed worker's claim lapses.
    locked_until    timestamptz,
    last_error      text,
    settled_at      timestamptz
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_case ON outbox (case_id);
REVOKE ALL ON outbox FROM PUBLIC;
GRANT SELECT, UPDATE (attempts, next_attempt_at, locked_until, last_error) ON outbox TO huiyin_app;

CREATE TABLE notice_templates (
    notice     text        NOT NULL
               CHECK (notice IN ('acknowledgement', 'reply', 'follow_up_request', 'question', 'extension')),
    channel    text        NOT NULL CHECK (channel IN ('sms', 'email')),
    subject    text        NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    body       text        NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text,
    PRIMARY KEY (notice, channel)
);
REVOKE ALL ON notice_templates FROM PUBLIC;
GRANT SELECT, UPDATE ON notice_templates TO huiyin_app;

INSERT INTO notice_templates (notice, channel, subject, body) VALUES
 ('acknowledgement', 'sms', '受理告知',
  '【回音】您反映的问题已受理，受理编号{receipt_code}，我们将于{due_date}前答复。凭受理编号和查询密码可随时查询办理进度。'),
 ('acknowledgement', 'email', '您反映的问题已受理（{receipt_code}）',
  E'您好：\n\n您反映的问题已受理，受理编号 {receipt_code}。我们将于 {due_date} 前答复您。\n凭受理编号和查询密码可随时查询办理进度。\n\n镇纪委纠风工作专班'),
 ('reply', 'sms', '答复',
  '【回音】您反映的问题（{receipt_code}）已办理，答复如下：{reply} 请凭受理编号对答复作出评价。'),
 ('reply', 'email', '对您反映问题的答复（{receipt_code}）',
  E'您好：\n\n您反映的问题（受理编号 {receipt_code}）已办理，答复如下：\n\n{reply}\n\n请凭受理编号和查询密码对答复作出评价（满意、基本满意、不满意）。\n\n镇纪委纠风工作专班'),
 ('follow_up_request', 'sms', '回访',
  '【回音】我们未能电话联系到您。请凭受理编号{receipt_code}对答复作出评价，感谢支持。'),
 ('follow_up_request', 'email', '请对答复作出评价（{receipt_code}）',
  E'您好：\n\n我们就您反映的问题（受理编号 {receipt_code}）回访未能联系到您。请凭受理编号和查询密码对答复作出评价。\n\n镇纪委纠风工作专班'),
 ('question', 'sms', '补充询问',
  '【回音】关于您反映的问题（{receipt_code}），承办单位想了解：{question} 请凭受理编号回复。'),
 ('question', 'email', '关于您反映问题的询问（{receipt_code}）',
  E'您好：\n\n关于您反映的问题（受理编号 {receipt_code}），承办单位想了解：\n\n{question}\n\n请凭受理编号和查询密码回复。\n\n镇纪委纠风工作专班'),
 ('extension', 'sms', '延期告知',
  '【回音】您反映的问题（{receipt_code}）情况较复杂，办理期限延长至{due_date}，敬请谅解。'),
 ('extension', 'email', '办理期限延长告知（{receipt_code}）',
  E'您好：\n\n您反映的问题（受理编号 {receipt_code}）情况较复杂，经批准办理期限延长至 {due_date}。\n\n镇纪委纠风工作专班');

CREATE TABLE webhook_endpoints (
    id                   uuid        PRIMARY KEY,
    url                  text        NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2000),
    -- Signs deliveries (HMAC-SHA256); shown once when the endpoint is registered.
    secret               text        NOT NULL,
    -- Event-type prefixes delivered (`case.`, `case.fed_back`); empty: every event.
    event_types          text[]      NOT NULL DEFAULT '{}',
    active               boolean     NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    created_by           text        NOT NULL,
    -- The feed position of the last event delivered (or skipped by the filter).
    cursor_tx            bigint      NOT NULL DEFAULT 0,
    cursor_position      bigint      NOT NULL DEFAULT 0,
    delivered            bigint      NOT NULL DEFAULT 0,
    consecutive_failures integer     NOT NULL DEFAULT 0,
    next_attempt_at      timestamptz NOT NULL DEFAULT now(),
    last_status          integer,
    last_error           text,
    disabled_at          timestamptz
);
REVOKE ALL ON webhook_endpoints FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON webhook_endpoints TO huiyin_app;

CREATE TABLE webhook_disablements (
    endpoint_id uuid        NOT NULL REFERENCES webhook_endpoints (id),
    at          timestamptz NOT NULL DEFAULT now(),
    by          text        NOT NULL,
    reason      text        NOT NULL,
    -- The feed position it stopped at.
    cursor      text        NOT NULL
);
REVOKE ALL ON webhook_disablements FROM PUBLIC;
GRANT SELECT, INSERT ON webhook_disablements TO huiyin_app;

CREATE TABLE open311_keys (
    id         uuid        PRIMARY KEY,
    key_hash   bytea       NOT NULL UNIQUE,
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    channel    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text        NOT NULL,
    revoked_at timestamptz
);
REVOKE ALL ON open311_keys FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE (revoked_at) ON open311_keys TO huiyin_app;

ALTER TABLE categories ADD COLUMN attributes jsonb NOT NULL DEFAULT '[]'::jsonb;

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
        v_new_units := ARRAY(SELECT DISTINCT x::uuid FROM jsonb_array_elements_text(
                                 coalesce(p_ledger->'handed_to', '[]'::jsonb)) AS x);
        IF cardinality(v_new_units) > 0 THEN
            SELECT count(*) INTO v_active
              FROM (SELECT 1 FROM units WHERE id = ANY(v_new_units) AND active FOR SHARE) AS s;
            IF v_active <> cardinality(v_new_units) THEN
                RAISE EXCEPTION 'append_events: a unit the case is handed to is deactivated'
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'case_unit_active';
            END IF;
        END IF;

        INSERT INTO ledger AS l
        SELECT * FROM jsonb_populate_record(NULL::ledger, p_ledger || jsonb_build_object('case_id', p_case))
        ON CONFLICT ON CONSTRAINT ledger_pkey DO UPDATE SET
            (version, category_id, village_id, unit_id, urgency, status, round, assigned_at, handled_at,
             fed_back_at, closed_at, deadline_stage, started_at, due_at, due_soon_at, satisfaction, escalated,
             duplicate_of, co_unit_ids, accepted_at, signed_at, returns, solved, rejection_code, ack_due_at,
             overall_due_at, next_due_at, next_due_stage, next_started_at, next_due_soon_at, paused,
             calendar_incomplete, search)
          = (EXCLUDED.version, EXCLUDED.category_id, EXCLUDED.village_id, EXCLUDED.unit_id, EXCLUDED.urgency,
             EXCLUDED.status, EXCLUDED.round, EXCLUDED.assigned_at, EXCLUDED.handled_at, EXCLUDED.fed_back_at,
             EXCLUDED.closed_at, EXCLUDED.deadline_stage, EXCLUDED.started_at, EXCLUDED.due_at,
             EXCLUDED.due_soon_at, EXCLUDED.satisfaction, EXCLUDED.escalated, EXCLUDED.duplicate_of,
             EXCLUDED.co_unit_ids, EXCLUDED.accepted_at, EXCLUDED.signed_at, EXCLUDED.returns, EXCLUDED.solved,
             EXCLUDED.rejection_code, EXCLUDED.ack_due_at, EXCLUDED.overall_due_at, EXCLUDED.next_due_at,
             EXCLUDED.next_due_stage, EXCLUDED.next_started_at, EXCLUDED.next_due_soon_at, EXCLUDED.paused,
             EXCLUDED.calendar_incomplete,
             -- An empty search means "unchanged": the service sends the lexemes only when what is
             -- searched (the handling result, the reply) changed.
             CASE WHEN EXCLUDED.search = ''::tsvector THEN l.search ELSE EXCLUDED.search END)
        -- Title, description, kind, channel, receipt and accused unit never change after
        -- registration.
        WHERE l.version < EXCLUDED.version;
    END IF;

    IF p_ledger IS NOT NULL THEN
        -- Beside the row, the service lists what the same transaction must also write (none of
        -- them a column of the ledger):
        -- `receipt_secret`: the slow hash of the secret a citizen who registered online holds.
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

