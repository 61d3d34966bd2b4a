-- V23: a finished campaign's summary report (总结报告) is frozen: computed once after its summary
-- phase ended, from the campaign's events folded again as a snapshot of the log saw them
-- (`log_snapshot`, a pg_snapshot as text; `log_position` the newest position it saw, for people),
-- stored with that snapshot, and served unchanged after; an auditor's replay folds the same
-- events again and must get the same bytes. The service may insert a report and read it, never
-- change or remove one.

CREATE TABLE summary_reports (
    campaign_id  uuid        NOT NULL,
    -- The village it is about; the nil uuid for the whole campaign.
    village_id   uuid        NOT NULL,
    report       jsonb       NOT NULL,
    log_snapshot text        NOT NULL,
    log_position bigint      NOT NULL,
    frozen_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, village_id)
);
GRANT SELECT, INSERT ON summary_reports TO huiyin_app;

-- `serve` checks whether a migration marked the ledger for a rebuild (V21) with whatever
-- connection it has: the service's role reads the marks too (only the owner rebuilds).
GRANT SELECT ON projection_rebuilds_due TO huiyin_app;

-- The fold runs on a connection of its own into temporary tables (`infra::replay`): the
-- service's role may create them in this database whatever PUBLIC was granted.
DO $$
BEGIN
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO huiyin_app', current_database());
END
$$;
