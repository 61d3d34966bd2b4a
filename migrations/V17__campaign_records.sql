-- V17: the campaign's own records (纠风工作基层行): campaigns with their phases, symposium
-- meetings, visits, contact-card batches and questionnaires. Each record is a stream in the same
-- log as the cases, with the same chain, checkpoints, feed and as-of replay: its events are rows
-- of `events` whose type starts with the stream type (`campaign.`, `meeting.`, `visit.`,
-- `card_batch.`, `survey.`). The stream type is therefore covered by the hash (it is part of the
-- hashed event type) and needs no column of its own.
--
-- `records` is their projection, one row per record, written only by append_record() in the
-- same transaction as the record's events (as the ledger is by append_events()): the service's
-- role can read it, never write it directly. `doc` is the record's folded state as the domain
-- computes it (the view is built from it); the other columns are what queries filter on.
--
-- Cases gain the facts that tie them to the campaign: the campaign and phase they were received
-- in (by date and unit, decided once at registration), and the record they came from (a meeting
-- opinion, a visit finding, a contact card, a questionnaire response). They never change after
-- registration, so append_events() writes them on insert only (its upsert lists the columns an
-- update changes, and these are not among them).

CREATE TABLE records (
    record_id     uuid        PRIMARY KEY,
    stream_type   text        NOT NULL CHECK (stream_type IN ('campaign', 'meeting', 'visit', 'card_batch', 'survey')),
    version       integer     NOT NULL CHECK (version > 0),
    campaign_id   uuid,
    -- The units the record concerns (host, leading and taking-part units, the village a card
    -- batch went to): a handler reads the records of their unit.
    unit_ids      uuid[]      NOT NULL DEFAULT '{}',
    -- An undercover visit not yet disclosed: only supervisors and auditors read it.
    restricted    boolean     NOT NULL DEFAULT false,
    -- The day it happened or starts (China Standard Time).
    happened_on   date,
    -- The serial range of a contact-card batch: no two batches overlap (the database refuses it,
    -- so two concurrent batches cannot both pass).
    serials       int8range,
    doc           jsonb       NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT records_serials_disjoint EXCLUDE USING gist (serials WITH &&)
);

CREATE INDEX records_type_idx ON records (stream_type, happened_on DESC, record_id);
CREATE INDEX records_campaign_idx ON records (campaign_id) WHERE campaign_id IS NOT NULL;
CREATE INDEX records_units_idx ON records USING gin (unit_ids);

REVOKE ALL ON records FROM PUBLIC;
GRANT SELECT ON records TO huiyin_app;

ALTER TABLE ledger
    ADD COLUMN campaign_id    uuid,
    ADD COLUMN campaign_phase text CHECK (campaign_phase IN ('preparation', 'implementation', 'summary')),
    ADD COLUMN source_type    text CHECK (source_type IN ('meeting', 'visit', 'card_batch', 'survey')),
    ADD COLUMN source_id      uuid,
    ADD COLUMN source_item    text;

CREATE INDEX ledger_campaign_idx ON ledger (campaign_id, received_at, case_id) WHERE campaign_id IS NOT NULL;
CREATE INDEX ledger_source_idx ON ledger (source_id, received_at, case_id) WHERE source_id IS NOT NULL;

-- Appends the events of one record and writes its projection row, in the caller's transaction.
-- The events go through append_events() (the advisory lock, the version check, the idempotency
-- key, the chain's head), with no ledger row; every event type must belong to the stream type.
CREATE FUNCTION append_record(
    p_stream_type  text,
    p_record_id    uuid,
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
    p_record       jsonb
) RETURNS TABLE (outcome text, case_id uuid, first_version integer, last_version integer,
                 first_position bigint, last_position bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    IF p_stream_type = 'case' OR EXISTS (
        SELECT 1 FROM unnest(p_types) AS t WHERE t NOT LIKE p_stream_type || '.%') THEN
        RAISE EXCEPTION 'append_record: every event type must start with %.', p_stream_type
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO r FROM append_events(p_record_id, p_expected, p_types, p_schemas, p_payloads, p_metadata,
                                       p_occurred, p_prev_hash, p_hashes, p_idem_scope, p_idem_key,
                                       p_request_hash, NULL);
    IF r.outcome = 'appended' THEN
        INSERT INTO records AS x (record_id, stream_type, version, campaign_id, unit_ids, restricted,
                                  happened_on, serials, doc, updated_at)
        VALUES (p_record_id, p_stream_type, r.last_version,
                (p_record->>'campaign_id')::uuid,
                ARRAY(SELECT u::uuid FROM jsonb_array_elements_text(coalesce(p_record->'unit_ids', '[]')) AS u),
                coalesce((p_record->>'restricted')::boolean, false),
                (p_record->>'happened_on')::date,
                CASE WHEN p_record ? 'serial_from'
                     THEN int8range((p_record->>'serial_from')::bigint, (p_record->>'serial_to')::bigint, '[]') END,
                p_record->'doc', now())
        ON CONFLICT (record_id) DO UPDATE SET
            (version, campaign_id, unit_ids, restricted, happened_on, serials, doc, updated_at)
          = (EXCLUDED.version, EXCLUDED.campaign_id, EXCLUDED.unit_ids, EXCLUDED.restricted,
             EXCLUDED.happened_on, EXCLUDED.serials, EXCLUDED.doc, EXCLUDED.updated_at)
        WHERE x.version < EXCLUDED.version;
    END IF;
    RETURN QUERY SELECT r.outcome, r.case_id, r.first_version, r.last_version, r.first_position, r.last_position;
END
$$;

REVOKE ALL ON FUNCTION append_record(text, uuid, integer, text[], smallint[], jsonb[], jsonb[], timestamptz[],
                                     bytea, bytea[], text, text, bytea, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION append_record(text, uuid, integer, text[], smallint[], jsonb[], jsonb[], timestamptz[],
                                        bytea, bytea[], text, text, bytea, jsonb) TO huiyin_app;
