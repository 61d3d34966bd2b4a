-- V27: a campaign's summary report counts its cases by status, kind, channel, category, week and
-- overdue state, and lists the overdue ones (infra/src/report.rs). Read through the campaign's
-- index alone, without a heap visit per case: at a million cases, 175,000 in one campaign, each
-- of those scans read 1.5 GB of heap (0.3-0.7 s). The included columns are ones other indexes
-- already hold (status, next_due_at) or that never change after registration, so no update that
-- was HOT stops being HOT.
DROP INDEX ledger_campaign_idx;
CREATE INDEX ledger_campaign_idx ON ledger (campaign_id, received_at, case_id)
    INCLUDE (village_id, status, kind, channel, category_id, next_due_at, next_due_stage, receipt_code)
    WHERE campaign_id IS NOT NULL;
