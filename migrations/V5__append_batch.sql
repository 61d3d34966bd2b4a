-- V5: coalesced appends. Concurrent appends to different cases are grouped into one
-- transaction (one commit, one WAL flush) by the service's append batcher; each item keeps its
-- own optimistic-concurrency check, idempotency key and ledger row, exactly as append_events().
--
-- Every case's advisory lock is taken first, in sorted order, before any write assigns the
-- transaction id: two batches never deadlock on each other, and per-case feed order still equals
-- version order. An item that conflicts answers 'conflict' without failing the batch; any error
-- (a unique violation, say) fails the whole batch, and the service then appends its items one by
-- one, so one bad item never blocks the others.

CREATE FUNCTION append_batch(p_items jsonb)
RETURNS TABLE (idx integer, outcome text, case_id uuid, first_version integer, last_version integer,
               first_position bigint, last_position bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_item jsonb;
    v_i    integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(k)
       FROM (SELECT DISTINCT hashtextextended(e->>'case_id', 0) AS k
               FROM jsonb_array_elements(p_items) AS e ORDER BY 1) AS locks;

    FOR v_item IN SELECT value FROM jsonb_array_elements(p_items) LOOP
        RETURN QUERY
        SELECT v_i, a.outcome, a.case_id, a.first_version, a.last_version, a.first_position, a.last_position
          FROM append_events(
                (v_item->>'case_id')::uuid,
                (v_item->>'expected')::integer,
                ARRAY(SELECT x FROM jsonb_array_elements_text(v_item->'types') WITH ORDINALITY AS t(x, n) ORDER BY n),
                ARRAY(SELECT x::smallint FROM jsonb_array_elements_text(v_item->'schemas') WITH ORDINALITY AS t(x, n) ORDER BY n),
                ARRAY(SELECT x FROM jsonb_array_elements(v_item->'payloads') WITH ORDINALITY AS t(x, n) ORDER BY n),
                ARRAY(SELECT x FROM jsonb_array_elements(v_item->'metadata') WITH ORDINALITY AS t(x, n) ORDER BY n),
                ARRAY(SELECT x::timestamptz FROM jsonb_array_elements_text(v_item->'occurred') WITH ORDINALITY AS t(x, n) ORDER BY n),
                decode(v_item->>'prev_hash', 'hex'),
                ARRAY(SELECT decode(x, 'hex') FROM jsonb_array_elements_text(v_item->'hashes') WITH ORDINALITY AS t(x, n) ORDER BY n),
                v_item->>'idem_scope',
                v_item->>'idem_key',
                decode(v_item->>'request_hash', 'hex'),
                NULLIF(v_item->'ledger', 'null'::jsonb)) AS a;
        v_i := v_i + 1;
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION append_batch(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION append_batch(jsonb) TO huiyin_app;
