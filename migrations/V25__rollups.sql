-- V25: rollups of the KPI facts and of the cases received, per China day and key, so that a KPI
-- or a trend over a month reads a few thousand rows instead of every fact or case of the month
-- (seconds at a million cases: BENCHMARKS.md, issue 13).
--
-- How they stay exact without making concurrent appends wait on one another:
-- - The ledger's triggers write one row per change into an insert-only log of changes
--   (`kpi_fact_changes`: a KPI fact added +1 or gone -1, netted within the row's update;
--   `case_changes`: a case counted by the trends added or gone). Appends never update a shared
--   counter row, so they never wait for each other here.
-- - `rollups_compact()` (the service's background task, every few seconds; `huiyin-bench` after
--   its bulk load) moves the changes into the rollups in one statement per table: deleted from
--   the log and added to the counters at once, so no change is counted twice or lost.
-- - A query reads the rollup and the changes not yet compacted, expanded by the same functions
--   (`kpi_rollup_rows()`, `case_rollup_rows()`), in one snapshot.
-- - `rollups_fill()` computes both rollups again from `kpi_facts` and the ledger (this
--   migration, `huiyin rebuild`, and a report's replay on its temporary tables);
--   `huiyin verify --projections` compares them with what they are derived from.

-- The China Standard Time day of an instant (UTC+8, no daylight time), as the trends and the
-- working calendar count days.
CREATE FUNCTION china_day(t timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ((t AT TIME ZONE 'UTC') + interval '8 hours')::date $$;

-- A clock fell due by `now`: its step was done, or its due time passed with the clock running or
-- stopped after it (domain::kpi::Fact::fell_due).
CREATE FUNCTION kpi_fell_due(done_at timestamptz, at timestamptz, stopped_at timestamptz, now timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT done_at IS NOT NULL OR (at <= now AND (stopped_at IS NULL OR stopped_at >= at)) $$;

-- A clock's step was done by its due time (domain::kpi::Fact::met).
CREATE FUNCTION kpi_met(done_at timestamptz, at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT coalesce(done_at <= at, false) $$;

-- The two-character CJK terms of a title, each once: the overlapping character pairs the search
-- index makes of unspaced text, both characters in U+4E00..U+9FFF.
CREATE FUNCTION title_terms(title text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(array_agg(DISTINCT t ORDER BY t), '{}')
      FROM (SELECT substr(title, i, 2) AS t FROM generate_series(1, char_length(title) - 1) AS i) AS s
     WHERE t ~ '^[\u4e00-\u9fff]{2}$'
$$;

-- What one KPI fact adds (p_sign 1) or takes away (-1) per group: the total; its unit, village,
-- category, channel and campaign each alone (`dim` that name, `key` its value); and each pair of
-- them (`dim` 'a+b' in the order unit, village, category, channel, campaign; `key` a's value,
-- `key2` b's), for a query filtered on one and grouped by the other (or filtered on both, as a
-- village's summary report is). `day` is the China day of its `at`; `lag` (replies with an
-- acceptance, in the total and the single dimensions only) the calendar days from the
-- acceptance's day to the reply's, from which the working days are counted with the calendar of
-- the day they are asked for. `due` takes the clock's due time as passed when p_now is
-- 'infinity' (the rollup holds days that ended).
CREATE FUNCTION kpi_rollup_rows(p_sign integer, p_now timestamptz, p_kind text, p_unit uuid, p_at timestamptz,
                                p_done_at timestamptz, p_stopped_at timestamptz, p_rating text, p_solved boolean,
                                p_followed_up boolean, p_reopened boolean, p_returned boolean,
                                p_accepted_at timestamptz, p_village uuid, p_category uuid, p_channel text,
                                p_campaign uuid)
RETURNS TABLE (day date, kind text, dim text, key text, key2 text, lag integer, n integer, due integer, met integer,
               returned integer, reopened integer, followed_up integer, satisfied integer, solved integer,
               fully_satisfied integer, dissatisfied integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT china_day(p_at), p_kind, d.dim, d.key, d.key2,
           CASE WHEN p_kind = 'reply' AND p_accepted_at IS NOT NULL AND d.key2 IS NULL AND strpos(d.dim, '+') = 0
                THEN china_day(p_at) - china_day(p_accepted_at) END,
           p_sign,
           p_sign * kpi_fell_due(p_done_at, p_at, p_stopped_at, p_now)::integer,
           p_sign * kpi_met(p_done_at, p_at)::integer,
           p_sign * p_returned::integer,
           p_sign * p_reopened::integer,
           p_sign * p_followed_up::integer,
           p_sign * coalesce(p_rating IN ('satisfied', 'basically_satisfied'), false)::integer,
           p_sign * coalesce(p_solved, false)::integer,
           p_sign * coalesce(p_rating = 'satisfied', false)::integer,
           p_sign * coalesce(p_rating = 'dissatisfied', false)::integer
      FROM (VALUES ('total', NULL::text, NULL::text),
                   ('unit', p_unit::text, NULL), ('village', p_village::text, NULL),
                   ('category', p_category::text, NULL), ('channel', p_channel, NULL),
                   ('campaign', p_campaign::text, NULL),
                   ('unit+village', p_unit::text, p_village::text), ('unit+category', p_unit::text, p_category::text),
                   ('unit+channel', p_unit::text, p_channel), ('unit+campaign', p_unit::text, p_campaign::text),
                   ('village+category', p_village::text, p_category::text),
                   ('village+channel', p_village::text, p_channel),
                   ('village+campaign', p_village::text, p_campaign::text),
                   ('category+channel', p_category::text, p_channel),
                   ('category+campaign', p_category::text, p_campaign::text),
                   ('channel+campaign', p_channel, p_campaign::text)) AS d(dim, key, key2)
$$;

-- What one case counted by the trends (not linked as a duplicate) adds or takes away: its
-- category × village cell, its accused unit, and each term of its title, on the China day it
-- was received, under its campaign.
CREATE FUNCTION case_rollup_rows(p_sign integer, p_received_at timestamptz, p_campaign uuid, p_category uuid,
                                 p_village uuid, p_accused uuid, p_title text)
RETURNS TABLE (day date, campaign_id uuid, kind text, a uuid, b uuid, term text, n integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT china_day(p_received_at), p_campaign, x.kind, x.a, x.b, x.term, p_sign
      FROM (SELECT 'cell' AS kind, p_category AS a, p_village AS b, NULL::text AS term
            UNION ALL SELECT 'accused', p_accused, NULL, NULL WHERE p_accused IS NOT NULL
            UNION ALL SELECT 'term', NULL, NULL, t FROM unnest(title_terms(p_title)) AS t) AS x
$$;

CREATE TABLE kpi_rollup (
    day             date    NOT NULL,
    kind            text    NOT NULL,
    dim             text    NOT NULL,
    key             text,
    key2            text,
    lag             integer,
    n               bigint  NOT NULL,
    due             bigint  NOT NULL,
    met             bigint  NOT NULL,
    returned        bigint  NOT NULL,
    reopened        bigint  NOT NULL,
    followed_up     bigint  NOT NULL,
    satisfied       bigint  NOT NULL,
    solved          bigint  NOT NULL,
    fully_satisfied bigint  NOT NULL,
    dissatisfied    bigint  NOT NULL,
    CONSTRAINT kpi_rollup_key UNIQUE NULLS NOT DISTINCT (dim, day, key, key2, kind, lag)
);
CREATE TABLE kpi_fact_changes (sign integer NOT NULL, LIKE kpi_facts);

CREATE TABLE case_rollup (
    day         date   NOT NULL,
    campaign_id uuid,
    kind        text   NOT NULL,
    a           uuid,
    b           uuid,
    term        text,
    n           bigint NOT NULL,
    CONSTRAINT case_rollup_key UNIQUE NULLS NOT DISTINCT (kind, day, campaign_id, a, b, term)
);
CREATE TABLE case_changes (
    sign            integer     NOT NULL,
    received_at     timestamptz NOT NULL,
    campaign_id     uuid,
    category_id     uuid,
    village_id      uuid,
    accused_unit_id uuid,
    title           text        NOT NULL
);
-- The replies of a period with what the working days and the groups need, index-only: the
-- reply times of a query the rollup's lags do not hold (a pair of dimensions) come from here.
CREATE INDEX kpi_facts_reply_idx ON kpi_facts (at)
    INCLUDE (accepted_at, unit, village_id, category_id, channel, campaign_id, received_at)
    WHERE kind = 'reply';

REVOKE ALL ON kpi_rollup, kpi_fact_changes, case_rollup, case_changes FROM PUBLIC;
GRANT SELECT ON kpi_rollup, kpi_fact_changes, case_rollup, case_changes TO huiyin_app;

-- The ledger's KPI facts (V24) and their changes, in one statement each: an update logs only the
-- facts it changed.
CREATE OR REPLACE FUNCTION ledger_kpi_facts() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH added AS (
            INSERT INTO kpi_facts
            SELECT * FROM kpi_facts_of(NEW.case_id, NEW.village_id, NEW.category_id, NEW.channel, NEW.campaign_id,
                                       NEW.received_at, NEW.facts)
            RETURNING *)
        INSERT INTO kpi_fact_changes SELECT 1, * FROM added;
    ELSIF TG_OP = 'DELETE' THEN
        WITH gone AS (DELETE FROM kpi_facts WHERE case_id = OLD.case_id RETURNING *)
        INSERT INTO kpi_fact_changes SELECT -1, * FROM gone;
    ELSE
        WITH gone AS (DELETE FROM kpi_facts WHERE case_id = OLD.case_id RETURNING *),
             added AS (
                INSERT INTO kpi_facts
                SELECT * FROM kpi_facts_of(NEW.case_id, NEW.village_id, NEW.category_id, NEW.channel,
                                           NEW.campaign_id, NEW.received_at, NEW.facts)
                RETURNING *),
             both_ AS (SELECT -1 AS s, * FROM gone UNION ALL SELECT 1, * FROM added)
        INSERT INTO kpi_fact_changes
        SELECT sum(s), case_id, kind, unit, at, done_at, stopped_at, rating, solved, followed_up, reopened,
               returned, accepted_at, village_id, category_id, channel, campaign_id, received_at
          FROM both_
         GROUP BY case_id, kind, unit, at, done_at, stopped_at, rating, solved, followed_up, reopened,
                  returned, accepted_at, village_id, category_id, channel, campaign_id, received_at
        HAVING sum(s) <> 0;
    END IF;
    RETURN NULL;
END
$$;

-- A case counted by the trends added or gone: a case linked as a duplicate of another is the
-- same matter and counts once, under the first.
CREATE FUNCTION ledger_case_changes() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        IF OLD.duplicate_of IS NULL THEN
            INSERT INTO case_changes VALUES (-1, OLD.received_at, OLD.campaign_id, OLD.category_id, OLD.village_id,
                                             OLD.accused_unit_id, OLD.title);
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        IF NEW.duplicate_of IS NULL THEN
            INSERT INTO case_changes VALUES (1, NEW.received_at, NEW.campaign_id, NEW.category_id, NEW.village_id,
                                             NEW.accused_unit_id, NEW.title);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

-- Puts the derived tables' triggers on the table named `ledger` (a rebuild calls it on the new
-- one). Replaces V24's kpi_facts_attach().
DROP TRIGGER ledger_kpi_facts_inserted ON ledger;
DROP TRIGGER ledger_kpi_facts_updated ON ledger;
DROP TRIGGER ledger_kpi_facts_deleted ON ledger;
DROP FUNCTION kpi_facts_attach();
CREATE FUNCTION ledger_triggers_attach() RETURNS void
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
                           OR OLD.title IS DISTINCT FROM NEW.title)
        EXECUTE FUNCTION ledger_case_changes();
    CREATE TRIGGER ledger_case_changes_deleted AFTER DELETE ON ledger
        FOR EACH ROW EXECUTE FUNCTION ledger_case_changes();
END
$$;
REVOKE ALL ON FUNCTION ledger_triggers_attach() FROM PUBLIC;
SELECT ledger_triggers_attach();

-- Both rollups computed again from `kpi_facts` and the ledger, the change logs emptied. Names
-- are resolved when it runs (a plain SQL body), so a replay's temporary tables are the ones
-- filled.
CREATE FUNCTION rollups_fill() RETURNS void
LANGUAGE sql
AS $$
    TRUNCATE kpi_fact_changes, case_changes, kpi_rollup, case_rollup;
    INSERT INTO kpi_rollup
    SELECT x.day, x.kind, x.dim, x.key, x.key2, x.lag, sum(x.n), sum(x.due), sum(x.met), sum(x.returned),
           sum(x.reopened), sum(x.followed_up), sum(x.satisfied), sum(x.solved), sum(x.fully_satisfied),
           sum(x.dissatisfied)
      FROM kpi_facts f,
           kpi_rollup_rows(1, 'infinity', f.kind, f.unit, f.at, f.done_at, f.stopped_at, f.rating, f.solved,
                           f.followed_up, f.reopened, f.returned, f.accepted_at, f.village_id, f.category_id,
                           f.channel, f.campaign_id) AS x
     GROUP BY 1, 2, 3, 4, 5, 6;
    INSERT INTO case_rollup
    SELECT x.day, x.campaign_id, x.kind, x.a, x.b, x.term, sum(x.n)
      FROM ledger l,
           case_rollup_rows(1, l.received_at, l.campaign_id, l.category_id, l.village_id, l.accused_unit_id,
                            l.title) AS x
     WHERE l.duplicate_of IS NULL
     GROUP BY 1, 2, 3, 4, 5, 6;
$$;
REVOKE ALL ON FUNCTION rollups_fill() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rollups_fill() TO huiyin_app;

-- Moves at most `p_limit` changes of each log into the rollups; returns how many it moved. One
-- compaction at a time (the others return 0 at once); rows are added in key order, so it never
-- deadlocks with anything else updating them (nothing else does).
CREATE FUNCTION rollups_compact(p_limit integer) RETURNS bigint
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
                                l.accused_unit_id, l.title) AS x
         GROUP BY 1, 2, 3, 4, 5, 6
         ORDER BY 3, 1, 2, 4, 5, 6
        ON CONFLICT ON CONSTRAINT case_rollup_key DO UPDATE SET n = r.n + excluded.n
        RETURNING 1)
    SELECT count(*) INTO c FROM taken;
    RETURN k + c;
END
$$;
REVOKE ALL ON FUNCTION rollups_compact(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rollups_compact(integer) TO huiyin_app;

SELECT rollups_fill();
