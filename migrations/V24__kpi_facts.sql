-- V24: the KPI facts (domain::kpi::Fact) in a table of their own, one row per fact, so that a KPI
-- over a period reads the facts of that period through an index on their time, instead of
-- unpacking `ledger.facts` of every case received before the period's end (seconds at a million
-- cases).
--
-- `kpi_facts` is derived from `ledger.facts` alone, by triggers on the ledger: a row inserted, a
-- row updated whose facts, village or category changed, a row deleted. So whatever writes the
-- ledger keeps it (append_events(), the bulk loader, a rebuild's catch-up) and nothing else
-- writes it. `huiyin rebuild` builds it again beside the new ledger and swaps both (see
-- `kpi_facts_attach()`); `huiyin verify --projections` compares it with the ledger's facts. The
-- case's keys the KPIs filter and group by are copied beside each fact.

CREATE TABLE kpi_facts (
    case_id     uuid        NOT NULL,
    kind        text        NOT NULL,
    unit        uuid,
    at          timestamptz NOT NULL,
    done_at     timestamptz,
    stopped_at  timestamptz,
    rating      text,
    solved      boolean,
    followed_up boolean     NOT NULL,
    reopened    boolean     NOT NULL,
    returned    boolean     NOT NULL,
    accepted_at timestamptz,
    village_id  uuid,
    category_id uuid,
    channel     text        NOT NULL,
    campaign_id uuid,
    received_at timestamptz NOT NULL
);
-- The names PostgreSQL gives a copy's indexes with `_rebuild` in them: a rebuild renames them back.
CREATE INDEX kpi_facts_at_idx ON kpi_facts (at);
CREATE INDEX kpi_facts_case_id_idx ON kpi_facts (case_id);
REVOKE ALL ON kpi_facts FROM PUBLIC;
GRANT SELECT ON kpi_facts TO huiyin_app;

-- The facts of one ledger row, as rows of kpi_facts (its columns in its order, spelled out: a
-- function returning the table's own type would keep a rebuild from dropping the table). The
-- one place that unpacks them.
CREATE FUNCTION kpi_facts_of(p_case uuid, p_village uuid, p_category uuid, p_channel text, p_campaign uuid,
                             p_received timestamptz, p_facts jsonb)
RETURNS TABLE (case_id uuid, kind text, unit uuid, at timestamptz, done_at timestamptz, stopped_at timestamptz,
               rating text, solved boolean, followed_up boolean, reopened boolean, returned boolean,
               accepted_at timestamptz, village_id uuid, category_id uuid, channel text, campaign_id uuid,
               received_at timestamptz)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT p_case, f.kind, f.unit, f.at, f.done_at, f.stopped_at, f.rating, f.solved,
           coalesce(f.followed_up, false), coalesce(f.reopened, false), coalesce(f.returned, false),
           f.accepted_at, p_village, p_category, p_channel, p_campaign, p_received
      FROM jsonb_to_recordset(p_facts) AS f(kind text, unit uuid, at timestamptz, done_at timestamptz,
                                            stopped_at timestamptz, rating text, solved boolean,
                                            followed_up boolean, reopened boolean, returned boolean,
                                            accepted_at timestamptz)
$$;
GRANT EXECUTE ON FUNCTION kpi_facts_of(uuid, uuid, uuid, text, uuid, timestamptz, jsonb) TO huiyin_app;

-- Runs as the writer of the ledger (append_events() is SECURITY DEFINER; the loader and a
-- rebuild are the owner).
CREATE FUNCTION ledger_kpi_facts() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM kpi_facts WHERE case_id = OLD.case_id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO kpi_facts
        SELECT * FROM kpi_facts_of(NEW.case_id, NEW.village_id, NEW.category_id, NEW.channel, NEW.campaign_id,
                                   NEW.received_at, NEW.facts);
    END IF;
    RETURN NULL;
END
$$;

-- Puts the triggers on the table named `ledger` (a rebuild calls it on the new one).
CREATE FUNCTION kpi_facts_attach() RETURNS void
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
END
$$;
REVOKE ALL ON FUNCTION kpi_facts_attach() FROM PUBLIC;

SELECT kpi_facts_attach();

INSERT INTO kpi_facts
SELECT k.* FROM ledger l,
       kpi_facts_of(l.case_id, l.village_id, l.category_id, l.channel, l.campaign_id, l.received_at, l.facts) AS k;
