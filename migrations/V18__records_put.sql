-- V18: one place that turns a record's projection (the JSON the service computes) into its
-- `records` row: append_record() writes through it, and `huiyin rebuild` (as the owner) rebuilds
-- the table through it. Only the owner may call it directly: the service writes rows only with
-- the events that fold to them (append_record()).

CREATE FUNCTION records_put(p_record_id uuid, p_stream_type text, p_version integer, p_record jsonb)
RETURNS void
LANGUAGE sql
SET search_path = public, pg_temp
AS $$
    INSERT INTO records AS x (record_id, stream_type, version, campaign_id, unit_ids, restricted,
                              happened_on, serials, doc, updated_at)
    VALUES (p_record_id, p_stream_type, p_version,
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
$$;

REVOKE ALL ON FUNCTION records_put(uuid, text, integer, jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION append_record(
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
        PERFORM records_put(p_record_id, p_stream_type, r.last_version, p_record);
    END IF;
    RETURN QUERY SELECT r.outcome, r.case_id, r.first_version, r.last_version, r.first_position, r.last_position;
END
$$;
