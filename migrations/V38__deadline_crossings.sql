-- V38: the overdue view's counts (超期 / 临期 per unit and stage) kept with the ledger, so they
-- cost what the units and stages cost, not what the open cases cost.
--
-- The view counts every running clock (the stage's unless it stands still, the acknowledgement's,
-- the overall one) booked to the case's unit and stage: overdue when its due instant has passed,
-- due soon (80 %) when 80 % of its time is used, due soon (60 %) when 60 % is. Each of those three
-- instants is known when the clock starts, so each running clock is three crossings:
-- (instant, unit, stage, share). A crossing counts once its instant has passed (the due instant
-- strictly). So at any moment: overdue = crossed(100); due soon 80 = crossed(80) - crossed(100);
-- due soon 60 = crossed(60) - crossed(80) (a clock's 60 % falls no later than its 80 %, and
-- that no later than its due instant).
--
-- `deadline_crossings` is the log: a trigger on the ledger adds +1 for each crossing of a row's
-- clocks as they now stand and -1 for each as they stood (a crossing unchanged by the update is
-- left alone). Insert-only, so concurrent appends never wait on each other's counts.
-- `deadline_crossed` holds the crossings compacted once passed: the background compaction
-- (`deadline_crossings_compact()`) moves log rows whose instant lies more than an hour back
-- (`deadline_crossings_horizon()`) into one count per unit, stage and share. A count is then
-- `deadline_crossed` plus the log rows whose instant has passed: the compacted ones, plus at
-- most an hour and the time since the last compaction of crossings. The hour lets the service's
-- clock (which asks "how many at this moment") run up to an hour behind the database's.
--
-- A handler sees the cases their unit leads or co-handles, unless the case accuses it (the
-- ledger's scope). So each crossing is logged once for the unscoped view (`seen_by` NULL) and
-- once for each unit whose handlers see the case, and a handler's counts read that unit's rows.
--
-- The instants are computed as V28's counting statement computed them (started + (due -
-- started) x share). The projection check compares the log and totals with the ledger.

CREATE TABLE deadline_crossings (
    at      timestamptz NOT NULL,
    seen_by uuid,
    unit_id uuid,
    stage   text        NOT NULL,
    share   smallint    NOT NULL CHECK (share IN (60, 80, 100)),
    n       integer     NOT NULL
);
-- The counts read the passed crossings (`at <= now`) index-only; the compaction takes the oldest.
CREATE INDEX deadline_crossings_at_idx ON deadline_crossings (at) INCLUDE (seen_by, unit_id, stage, share, n);

CREATE TABLE deadline_crossed (
    seen_by uuid,
    unit_id uuid,
    stage   text     NOT NULL,
    share   smallint NOT NULL CHECK (share IN (60, 80, 100)),
    n       bigint   NOT NULL,
    CONSTRAINT deadline_crossed_key UNIQUE NULLS NOT DISTINCT (seen_by, unit_id, stage, share)
);

REVOKE ALL ON deadline_crossings, deadline_crossed FROM PUBLIC;
GRANT SELECT ON deadline_crossings, deadline_crossed TO huiyin_app;

-- The crossings of one ledger row's running clocks: the stage clock (unless paused; its stage is
-- `deadline_stage`, '' when none), the acknowledgement's from receipt and the overall clock from
-- acceptance, each at 60 % and 80 % of its time and at its due instant; each once for the
-- unscoped view (`seen_by` NULL) and once for each unit whose handlers see the case (the lead and
-- the co-units, but never the accused unit: the ledger's scope).
CREATE FUNCTION deadline_crossings_of(p_unit_id uuid, p_co_unit_ids uuid[], p_accused_unit_id uuid,
                                      p_deadline_stage text, p_started_at timestamptz, p_due_at timestamptz,
                                      p_paused boolean, p_received_at timestamptz, p_ack_due_at timestamptz,
                                      p_accepted_at timestamptz, p_overall_due_at timestamptz)
RETURNS TABLE (at timestamptz, seen_by uuid, unit_id uuid, stage text, share smallint)
LANGUAGE sql STABLE
AS $$
    SELECT CASE s.share WHEN 100 THEN c.due ELSE c.started + (c.due - c.started) * s.f END, v.seen_by, p_unit_id,
           c.stage, s.share
      FROM (VALUES (coalesce(p_deadline_stage, ''), p_started_at, CASE WHEN p_paused THEN NULL ELSE p_due_at END),
                   ('acknowledgement', p_received_at, p_ack_due_at),
                   ('overall', p_accepted_at, p_overall_due_at)) AS c(stage, started, due),
           (VALUES (60::smallint, 0.6), (80::smallint, 0.8), (100::smallint, 1.0)) AS s(share, f),
           (SELECT NULL::uuid
             UNION
            SELECT u FROM unnest(p_unit_id || coalesce(p_co_unit_ids, '{}')) AS u
             WHERE u IS NOT NULL AND u IS DISTINCT FROM p_accused_unit_id) AS v(seen_by)
     WHERE c.started IS NOT NULL AND c.due IS NOT NULL
$$;

-- Crossings at or before this instant may be compacted: an hour back from the database's clock.
CREATE FUNCTION deadline_crossings_horizon() RETURNS timestamptz
LANGUAGE sql STABLE
AS $$ SELECT now() - interval '1 hour' $$;

CREATE FUNCTION ledger_deadline_crossings() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO deadline_crossings (at, seen_by, unit_id, stage, share, n)
        SELECT c.*, 1
          FROM deadline_crossings_of(NEW.unit_id, NEW.co_unit_ids, NEW.accused_unit_id, NEW.deadline_stage, NEW.started_at,
                                     NEW.due_at, NEW.paused, NEW.received_at, NEW.ack_due_at, NEW.accepted_at,
                                     NEW.overall_due_at) AS c;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO deadline_crossings (at, seen_by, unit_id, stage, share, n)
        SELECT c.*, -1
          FROM deadline_crossings_of(OLD.unit_id, OLD.co_unit_ids, OLD.accused_unit_id, OLD.deadline_stage, OLD.started_at,
                                     OLD.due_at, OLD.paused, OLD.received_at, OLD.ack_due_at, OLD.accepted_at,
                                     OLD.overall_due_at) AS c;
    ELSE
        -- A crossing the update leaves as it was is not logged.
        WITH was AS (SELECT * FROM deadline_crossings_of(OLD.unit_id, OLD.co_unit_ids, OLD.accused_unit_id, OLD.deadline_stage, OLD.started_at,
                                     OLD.due_at, OLD.paused, OLD.received_at, OLD.ack_due_at, OLD.accepted_at,
                                     OLD.overall_due_at)),
             now_is AS (SELECT * FROM deadline_crossings_of(NEW.unit_id, NEW.co_unit_ids, NEW.accused_unit_id, NEW.deadline_stage, NEW.started_at,
                                     NEW.due_at, NEW.paused, NEW.received_at, NEW.ack_due_at, NEW.accepted_at,
                                     NEW.overall_due_at))
        INSERT INTO deadline_crossings (at, seen_by, unit_id, stage, share, n)
        SELECT g.*, -1 FROM (SELECT * FROM was EXCEPT ALL SELECT * FROM now_is) AS g
        UNION ALL
        SELECT a.*, 1 FROM (SELECT * FROM now_is EXCEPT ALL SELECT * FROM was) AS a;
    END IF;
    RETURN NULL;
END
$$;

-- The crossings of every row of `p_ledger`: the passed ones (before the horizon) counted into
-- `p_crossed`, the others logged into `p_crossings`. For this migration and a rebuild.
CREATE FUNCTION deadline_crossings_fill(p_ledger text, p_crossings text, p_crossed text) RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
    EXECUTE format(
        $q$INSERT INTO %s (seen_by, unit_id, stage, share, n)
           SELECT c.seen_by, c.unit_id, c.stage, c.share, count(*)
             FROM %s l, deadline_crossings_of(l.unit_id, l.co_unit_ids, l.accused_unit_id, l.deadline_stage, l.started_at,
                                              l.due_at, l.paused, l.received_at, l.ack_due_at, l.accepted_at,
                                              l.overall_due_at) AS c
            WHERE c.at <= deadline_crossings_horizon()
            GROUP BY 1, 2, 3, 4$q$,
        p_crossed, p_ledger);
    EXECUTE format(
        $q$INSERT INTO %s (at, seen_by, unit_id, stage, share, n)
           SELECT c.*, 1
             FROM %s l, deadline_crossings_of(l.unit_id, l.co_unit_ids, l.accused_unit_id, l.deadline_stage, l.started_at,
                                              l.due_at, l.paused, l.received_at, l.ack_due_at, l.accepted_at,
                                              l.overall_due_at) AS c
            WHERE c.at > deadline_crossings_horizon()
            ORDER BY 1$q$,
        p_crossings, p_ledger);
END
$fn$;
REVOKE ALL ON FUNCTION deadline_crossings_fill(text, text, text) FROM PUBLIC;

-- Moves up to `p_limit` passed crossings (before the horizon, oldest first) into the counts;
-- returns how many it moved (0 when another compaction holds the lock).
CREATE FUNCTION deadline_crossings_compact(p_limit integer) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    k bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('huiyin.deadline_crossings_compact')) THEN
        RETURN 0;
    END IF;
    WITH taken AS (
        DELETE FROM deadline_crossings
         WHERE ctid = ANY (ARRAY(SELECT ctid FROM deadline_crossings
                                  WHERE at <= deadline_crossings_horizon() ORDER BY at LIMIT p_limit))
        RETURNING *),
         moved AS (
        INSERT INTO deadline_crossed AS d (seen_by, unit_id, stage, share, n)
        SELECT seen_by, unit_id, stage, share, sum(n) FROM taken GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT ON CONSTRAINT deadline_crossed_key DO UPDATE SET n = d.n + excluded.n
        RETURNING 1)
    SELECT count(*) INTO k FROM taken;
    DELETE FROM deadline_crossed WHERE n = 0;
    RETURN k;
END
$$;
REVOKE ALL ON FUNCTION deadline_crossings_compact(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION deadline_crossings_compact(integer) TO huiyin_app;

-- The crossings' triggers on the ledger (the live one below, a rebuilt one through
-- `ledger_triggers_attach()`).
CREATE FUNCTION ledger_deadline_crossings_attach() RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    CREATE TRIGGER ledger_deadline_crossings_inserted AFTER INSERT ON ledger
        FOR EACH ROW EXECUTE FUNCTION ledger_deadline_crossings();
    CREATE TRIGGER ledger_deadline_crossings_updated AFTER UPDATE ON ledger
        FOR EACH ROW WHEN (OLD.unit_id IS DISTINCT FROM NEW.unit_id
                           OR OLD.co_unit_ids IS DISTINCT FROM NEW.co_unit_ids
                           OR OLD.accused_unit_id IS DISTINCT FROM NEW.accused_unit_id
                           OR OLD.deadline_stage IS DISTINCT FROM NEW.deadline_stage
                           OR OLD.started_at IS DISTINCT FROM NEW.started_at
                           OR OLD.due_at IS DISTINCT FROM NEW.due_at
                           OR OLD.paused IS DISTINCT FROM NEW.paused
                           OR OLD.received_at IS DISTINCT FROM NEW.received_at
                           OR OLD.ack_due_at IS DISTINCT FROM NEW.ack_due_at
                           OR OLD.accepted_at IS DISTINCT FROM NEW.accepted_at
                           OR OLD.overall_due_at IS DISTINCT FROM NEW.overall_due_at)
        EXECUTE FUNCTION ledger_deadline_crossings();
    CREATE TRIGGER ledger_deadline_crossings_deleted AFTER DELETE ON ledger
        FOR EACH ROW EXECUTE FUNCTION ledger_deadline_crossings();
END
$$;
REVOKE ALL ON FUNCTION ledger_deadline_crossings_attach() FROM PUBLIC;

-- V31's triggers (its body as it was), and the crossings'.
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
    PERFORM ledger_deadline_crossings_attach();
END
$$;
REVOKE ALL ON FUNCTION ledger_triggers_attach() FROM PUBLIC;

-- The live ledger: its crossings as it stands, then the triggers (in this transaction, and
-- under the lock that keeps appends out, so no change is lost or counted twice).
LOCK TABLE ledger IN SHARE MODE;
SELECT deadline_crossings_fill('ledger', 'deadline_crossings', 'deadline_crossed');
SELECT ledger_deadline_crossings_attach();
