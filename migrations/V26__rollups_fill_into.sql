-- V26: the analysis rollups (V25) filled into tables named by the caller, so that `huiyin rebuild`
-- fills new ones from the new ledger and KPI facts before its switch-over, while appends and
-- reads go on, instead of recomputing them under the ledger's lock (minutes at a million cases).
-- A report's replay fills its temporary tables with it (names are resolved when it runs, so the
-- session's temporary tables come first). The change logs are the caller's business: a rebuild
-- empties them at its switch-over and logs there only what changed since its snapshot.
DROP FUNCTION rollups_fill();

CREATE FUNCTION rollups_fill(p_facts text, p_ledger text, p_kpi_rollup text, p_case_rollup text) RETURNS void
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
                                   l.accused_unit_id, l.title) AS x
            WHERE l.duplicate_of IS NULL
            GROUP BY 1, 2, 3, 4, 5, 6$q$,
        p_case_rollup, p_ledger);
END
$fn$;
REVOKE ALL ON FUNCTION rollups_fill(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rollups_fill(text, text, text, text) TO huiyin_app;
