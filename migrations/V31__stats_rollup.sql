-- V31: the statistics (`GET /api/v1/stats`: cases by status, kind, channel, category, village and
-- unit, received in a period) read V25's case rollup for the whole China days of their period
-- (issue 14). They scanned every case of the period: p95 0.96 s for a year at a million cases.
--
-- The case rollup gains six kinds — `status`, `kind`, `channel` (the key in `term`) and
-- `category`, `village`, `unit` (the key in `a`, NULL for none) — per China day received and
-- campaign, each counting every case (the statistics count duplicates too; the trends' kinds
-- `cell`, `accused` and `term` still skip a case linked as a duplicate). The change log carries
-- what these need, and the ledger's trigger logs a case again when its status, lead unit, kind
-- or channel changes. Everything else of V25 and V26 stands: appends only insert into the log, the
-- compaction moves it, a reader adds the changes not yet compacted, and `huiyin verify
-- --projections` compares the rollup with the ledger.
--
-- Cost: an append that changes a case's status or lead unit now logs two rows (-1 and +1).

ALTER TABLE case_changes
    ADD COLUMN duplicate boolean NOT NULL DEFAULT false,
    ADD COLUMN status    text,
    ADD COLUMN kind      text,
    ADD COLUMN channel   text,
    ADD COLUMN unit_id   uuid;

DROP FUNCTION case_rollup_rows(integer, timestamptz, uuid, uuid, uuid, uuid, text);

-- What one case adds (p_sign 1) or takes away (-1), on the China day it was received, under its
-- campaign: for the trends (unless it is linked as a duplicate) its category × village cell, its
-- accused unit and each term of its title; for the statistics its status, kind, channel,
-- category, village and lead unit.
CREATE FUNCTION case_rollup_rows(p_sign integer, p_received_at timestamptz, p_campaign uuid, p_category uuid,
                                 p_village uuid, p_accused uuid, p_title text, p_duplicate boolean,
                                 p_status text, p_kind text, p_channel text, p_unit uuid)
RETURNS TABLE (day date, campaign_id uuid, kind text, a uuid, b uuid, term text, n integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT china_day(p_received_at), p_campaign, x.kind, x.a, x.b, x.term, p_sign
      FROM (SELECT 'cell' AS kind, p_category AS a, p_village AS b, NULL::text AS term WHERE NOT p_duplicate
            UNION ALL SELECT 'accused', p_accused, NULL, NULL WHERE p_accused IS NOT NULL AND NOT p_duplicate
            UNION ALL SELECT 'term', NULL, NULL, t FROM unnest(title_terms(p_title)) AS t WHERE NOT p_duplicate
            UNION ALL SELECT 'status', NULL, NULL, p_status
            UNION ALL SELECT 'kind', NULL, NULL, p_kind
            UNION ALL SELECT 'channel', NULL, NULL, p_channel
            UNION ALL SELECT 'category', p_category, NULL, NULL
            UNION ALL SELECT 'village', p_village, NULL, NULL
            UNION ALL SELECT 'unit', p_unit, NULL, NULL) AS x
$$;

-- Every case added or gone, with whether it is linked as a duplicate.
CREATE OR REPLACE FUNCTION ledger_case_changes() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO case_changes (sign, received_at, campaign_id, category_id, village_id, accused_unit_id, title,
                                  duplicate, status, kind, channel, unit_id)
        VALUES (-1, OLD.received_at, OLD.campaign_id, OLD.category_id, OLD.village_id, OLD.accused_unit_id,
                OLD.title, OLD.duplicate_of IS NOT NULL, OLD.status, OLD.kind, OLD.channel, OLD.unit_id);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO case_changes (sign, received_at, campaign_id, category_id, village_id, accused_unit_id, title,
                                  duplicate, status, kind, channel, unit_id)
        VALUES (1, NEW.received_at, NEW.campaign_id, NEW.category_id, NEW.village_id, NEW.accused_unit_id,
                NEW.title, NEW.duplicate_of IS NOT NULL, NEW.status, NEW.kind, NEW.channel, NEW.unit_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION ledger_triggers_attach() RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    CREATE TRIGGER ledger_kpi_facts_inserted AFTER INSERT ON ledger
        FOR EACH ROW EXECUTE FUNCTION ledger_kpi_facts();
    CREATE TRIGGER ledger_kpi_facts_updated AFTER UPDATE ON ledger
        FOR EACH ROW WHEN (OLD.facts IS DISTINCT FROM NEW.facts
                           OR OLD.village_id IS DISTINCT FROM NEW.village_id
                           OR OLD.category_id IS DISTINCT FROM NEW.category_id)
        EXECUTE FUNCTION ledger_kpi_facts();
    CREATE TRIGGER ledger_kpi_facts_deleted AFTER DELETE ON ledger
        FOR EACH ROW EXECUTE FUNCTION ledger_kpi_facts();
    CREATE TRIGGER ledger_case_changes_inserted AFTER INSERT ON ledger
        FOR EACH ROW EXECUTE FUNCTION ledger_case_changes();
    CREATE TRIGGER ledger_case_changes_updated AFTER UPDATE ON ledger
        FOR EACH ROW WHEN ((OLD.duplicate_of IS NULL) IS DISTINCT FROM (NEW.duplicate_of IS NULL)
                           OR OLD.received_at IS DISTINCT FROM NEW.received_at
                           OR OLD.campaign_id IS DISTINCT FROM NEW.campaign_id
                           OR OLD.category_id IS DISTINCT FROM NEW.category_id
                           OR OLD.village_id IS DISTINCT FROM NEW.village_id
                           OR OLD.accused_unit_id IS DISTINCT FROM NEW.accused_unit_id
                           OR OLD.title IS DISTINCT FROM NEW.title
                           OR OLD.status IS DISTINCT FROM NEW.status
                           OR OLD.kind IS DISTINCT FROM NEW.kind
                           OR OLD.channel IS DISTINCT FROM NEW.channel
                           OR OLD.unit_id IS DISTINCT FROM NEW.unit_id)
        EXECUTE FUNCTION ledger_case_changes();
    CREATE TRIGGER ledger_case_changes_deleted AFTER DELETE ON ledger
        FOR EACH ROW EXECUTE FUNCTION ledger_case_changes();
END
$$;
REVOKE ALL ON FUNCTION ledger_triggers_attach() FROM PUBLIC;

DROP TRIGGER ledger_case_changes_updated ON ledger;
CREATE TRIGGER ledger_case_changes_updated AFTER UPDATE ON ledger
    FOR EACH ROW WHEN ((OLD.duplicate_of IS NULL) IS DISTINCT FROM (NEW.duplicate_of IS NULL)
                       OR OLD.received_at IS DISTINCT FROM NEW.received_at
                       OR OLD.campaign_id IS DISTINCT FROM NEW.campaign_id
                       OR OLD.category_id IS DISTINCT FROM NEW.category_id
                       OR OLD.village_id IS DISTINCT FROM NEW.village_id
                       OR OLD.accused_unit_id IS DISTINCT FROM NEW.accused_unit_id
                       OR OLD.title IS DISTINCT FROM NEW.title
                       OR OLD.status IS DISTINCT FROM NEW.status
                       OR OLD.kind IS DISTINCT FROM NEW.kind
                       OR OLD.channel IS DISTINCT FROM NEW.channel
                       OR OLD.unit_id IS DISTINCT FROM NEW.unit_id)
    EXECUTE FUNCTION ledger_case_changes();

CREATE OR REPLACE FUNCTION rollups_fill(p_facts text, p_ledger text, p_kpi_rollup text, p_case_rollup text) RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
    EXECUTE format('TRUNCATE %I, %I', p_kpi_rollup, p_case_rollup);
    EXECUTE format(
        $q$INSERT INTO %I
           SELECT x.day, x.kind, x.dim, x.key, x.key2, x.lag, sum(x.n), sum(x.due), sum(x.met), sum(x.returned),
                  sum(x.reopened), sum(x.followed_up), sum(x.satisfied), sum(x.solved), sum(x.fully_satisfied),
                  sum(x.dissatisfied)
             FROM %I f,
                  kpi_rollup_rows(1, 'infinity', f.kind, f.unit, f.at, f.done_at, f.stopped_at, f.rating, f.solved,
                                  f.followed_up, f.reopened, f.returned, f.accepted_at, f.village_id,
                                  f.category_id, f.channel, f.campaign_id) AS x
            GROUP BY 1, 2, 3, 4, 5, 6$q$,
        p_kpi_rollup, p_facts);
    EXECUTE format(
        $q$INSERT INTO %I
           SELECT x.day, x.campaign_id, x.kind, x.a, x.b, x.term, sum(x.n)
             FROM %I l,
                  case_rollup_rows(1, l.received_at, l.campaign_id, l.category_id, l.village_id,
                                   l.accused_unit_id, l.title, l.duplicate_of IS NOT NULL, l.status, l.kind,
                                   l.channel, l.unit_id) AS x
            GROUP BY 1, 2, 3, 4, 5, 6$q$,
        p_case_rollup, p_ledger);
END
$fn$;

CREATE OR REPLACE FUNCTION rollups_compact(p_limit integer) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    k bigint;
    c bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('huiyin.rollups_compact')) THEN
        RETURN 0;
    END IF;
    WITH taken AS (
        DELETE FROM kpi_fact_changes
         WHERE ctid = ANY (ARRAY(SELECT ctid FROM kpi_fact_changes LIMIT p_limit))
        RETURNING *),
         moved AS (
        INSERT INTO kpi_rollup AS r
        SELECT x.day, x.kind, x.dim, x.key, x.key2, x.lag, sum(x.n), sum(x.due), sum(x.met), sum(x.returned),
               sum(x.reopened), sum(x.followed_up), sum(x.satisfied), sum(x.solved), sum(x.fully_satisfied),
               sum(x.dissatisfied)
          FROM taken f,
               kpi_rollup_rows(f.sign, 'infinity', f.kind, f.unit, f.at, f.done_at, f.stopped_at, f.rating, f.solved,
                               f.followed_up, f.reopened, f.returned, f.accepted_at, f.village_id, f.category_id,
                               f.channel, f.campaign_id) AS x
         GROUP BY 1, 2, 3, 4, 5, 6
         ORDER BY 3, 1, 4, 5, 2, 6
        ON CONFLICT ON CONSTRAINT kpi_rollup_key DO UPDATE
           SET n = r.n + excluded.n, due = r.due + excluded.due, met = r.met + excluded.met,
               returned = r.returned + excluded.returned, reopened = r.reopened + excluded.reopened,
               followed_up = r.followed_up + excluded.followed_up, satisfied = r.satisfied + excluded.satisfied,
               solved = r.solved + excluded.solved, fully_satisfied = r.fully_satisfied + excluded.fully_satisfied,
               dissatisfied = r.dissatisfied + excluded.dissatisfied
        RETURNING 1)
    SELECT count(*) INTO k FROM taken;
    WITH taken AS (
        DELETE FROM case_changes
         WHERE ctid = ANY (ARRAY(SELECT ctid FROM case_changes LIMIT p_limit))
        RETURNING *),
         moved AS (
        INSERT INTO case_rollup AS r
        SELECT x.day, x.campaign_id, x.kind, x.a, x.b, x.term, sum(x.n)
          FROM taken l,
               case_rollup_rows(l.sign, l.received_at, l.campaign_id, l.category_id, l.village_id,
                                l.accused_unit_id, l.title, l.duplicate, l.status, l.kind, l.channel,
                                l.unit_id) AS x
         GROUP BY 1, 2, 3, 4, 5, 6
         ORDER BY 3, 1, 2, 4, 5, 6
        ON CONFLICT ON CONSTRAINT case_rollup_key DO UPDATE SET n = r.n + excluded.n
        RETURNING 1)
    SELECT count(*) INTO c FROM taken;
    RETURN k + c;
END
$$;

-- The case rollup computed again with the new kinds, its log emptied (in this transaction: no
-- change is lost or counted twice).
TRUNCATE case_changes, case_rollup;
INSERT INTO case_rollup
SELECT x.day, x.campaign_id, x.kind, x.a, x.b, x.term, sum(x.n)
  FROM ledger l,
       case_rollup_rows(1, l.received_at, l.campaign_id, l.category_id, l.village_id, l.accused_unit_id, l.title,
                        l.duplicate_of IS NOT NULL, l.status, l.kind, l.channel, l.unit_id) AS x
 GROUP BY 1, 2, 3, 4, 5, 6;
