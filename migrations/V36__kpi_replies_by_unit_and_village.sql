-- V36: the reply times of a KPI filtered by a unit or a village read only that unit's or
-- village's replies (issue 14).
--
-- A pair's rollup rows hold no reply lags (V25), so a KPI whose rollup plan is a pair — a
-- handler's KPIs grouped by anything but the total (the handler's unit is a fixed key), or a
-- supervisor's filtered by a unit or a village and grouped by another dimension — reads its
-- whole period's replies from kpi_facts. Through kpi_facts_reply_idx, led by the time, that
-- meant every reply of the town in the period: at a million cases, 30 days of one unit read
-- 49 928 replies to keep 2 757, 13-18 ms. Led by the unit, then the time: 2 626 rows, 2.7 ms
-- (EXPLAIN ANALYZE, BENCHMARKS.md). The village's is the same read by village.
--
-- Only reply facts are in these (18 % of the facts at a million cases); a fact is written again when
-- its case's facts change. A filter by a category, a channel or a campaign still reads the
-- period's replies through kpi_facts_reply_idx.
CREATE INDEX kpi_facts_reply_unit_idx ON kpi_facts (unit, at)
    INCLUDE (accepted_at, village_id, category_id, channel, campaign_id, received_at)
    WHERE kind = 'reply';
CREATE INDEX kpi_facts_reply_village_idx ON kpi_facts (village_id, at)
    INCLUDE (accepted_at, unit, category_id, channel, campaign_id, received_at)
    WHERE kind = 'reply';
