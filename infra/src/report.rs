//! What a campaign's summary report (总结报告) reads: its cases' counts from the ledger, its
//! overdue cases, its supervision items, and the frozen reports of finished campaigns.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::db::Pool;
use crate::error::StoreError;

/// Cases of a campaign (and village) under one combination of status, kind, channel, category
/// and week received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseGroup {
    /// Status.
    pub status: String,
    /// Kind.
    pub kind: String,
    /// Channel.
    pub channel: String,
    /// Category.
    pub category_id: Option<Uuid>,
    /// The Monday (China Standard Time) of the week the cases were received.
    pub week: NaiveDate,
    /// How many.
    pub count: i64,
    /// How many of them had a running clock past due at the given moment.
    pub overdue: i64,
}

/// The campaign's cases grouped by status, kind, channel, category and week received, with how
/// many of each were overdue at `now` (one scan of the campaign's index: the report's totals,
/// its weekly line and its overdue count add these up).
///
/// # Errors
/// A database failure.
pub async fn case_groups(
    pool: &Pool,
    campaign: Uuid,
    village: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Vec<CaseGroup>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT status, kind, channel, category_id, \
                    date_trunc('week', (received_at AT TIME ZONE 'UTC') + interval '8 hours')::date, \
                    count(*), count(*) FILTER (WHERE next_due_at < $3) \
             FROM ledger WHERE campaign_id = $1 AND ($2::uuid IS NULL OR village_id = $2) GROUP BY 1, 2, 3, 4, 5",
        )
        .await?;
    Ok(client
        .query(&stmt, &[&campaign, &village, &now])
        .await?
        .iter()
        .map(|r| CaseGroup {
            status: r.get(0),
            kind: r.get(1),
            channel: r.get(2),
            category_id: r.get(3),
            week: r.get(4),
            count: r.get(5),
            overdue: r.get(6),
        })
        .collect())
}

/// An open case past a deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverdueCase {
    /// The case.
    pub case_id: Uuid,
    /// Its receipt code.
    pub receipt_code: String,
    /// Its category.
    pub category_id: Option<Uuid>,
    /// The clock due first (a stage, `acknowledgement` or `overall`).
    pub stage: Option<String>,
    /// When it fell due.
    pub due_at: DateTime<Utc>,
}

/// The campaign's cases whose first running clock is past due at `now`, the longest overdue
/// first (at most `limit`; [`case_groups`] counts them all).
///
/// # Errors
/// A database failure.
pub async fn overdue(
    pool: &Pool,
    campaign: Uuid,
    village: Option<Uuid>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<OverdueCase>, StoreError> {
    let client = pool.get().await?;
    let list = client
        .prepare_cached(
            "SELECT case_id, receipt_code, category_id, next_due_stage, next_due_at FROM ledger \
             WHERE campaign_id = $1 AND ($2::uuid IS NULL OR village_id = $2) AND next_due_at < $3 \
             ORDER BY next_due_at, case_id LIMIT $4",
        )
        .await?;
    let rows = client.query(&list, &[&campaign, &village, &now, &limit]).await?;
    Ok(rows
        .iter()
        .map(|r| OverdueCase {
            case_id: r.get(0),
            receipt_code: r.get(1),
            category_id: r.get(2),
            stage: r.get(3),
            due_at: r.get(4),
        })
        .collect())
}

/// Supervision items about a campaign's cases under one level and trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisionCount {
    /// The level as stored (`general`, `key`, `listed`).
    pub level: Option<String>,
    /// The trigger's kind as stored (`overdue`, `repeat_dissatisfied`, …, `manual`).
    pub trigger: Option<String>,
    /// Items raised.
    pub raised: i64,
    /// Of them, not closed.
    pub open: i64,
}

/// The supervision items about the campaign's cases (and village's), counted by level and
/// trigger in the database: a campaign in operation gathers tens of thousands of them. Items are
/// found through the campaign each carries (`records.campaign_id`, indexed), so the count grows
/// with the campaign's items, not with every item ever raised; items raised before items
/// carried their case's campaign are not counted.
///
/// # Errors
/// A database failure.
pub async fn supervision_counts(
    pool: &Pool,
    campaign: Uuid,
    village: Option<Uuid>,
) -> Result<Vec<SupervisionCount>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT r.doc->>'level', r.doc->'trigger'->>'kind', count(*), \
                    count(*) FILTER (WHERE r.doc->>'closed_at' IS NULL) \
             FROM records r \
             WHERE r.campaign_id = $1 AND r.stream_type = 'supervision' \
               AND ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM ledger l \
                    WHERE l.case_id = (r.doc->>'case')::uuid AND l.village_id = $2)) \
             GROUP BY 1, 2",
        )
        .await?;
    Ok(client
        .query(&stmt, &[&campaign, &village])
        .await?
        .iter()
        .map(|r| SupervisionCount { level: r.get(0), trigger: r.get(1), raised: r.get(2), open: r.get(3) })
        .collect())
}

/// A frozen report: as computed once its campaign's summary phase had ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Frozen {
    /// The report (JSON), byte for byte as stored.
    pub report: serde_json::Value,
    /// The moment of the log it was computed at (see [`crate::replay`]).
    pub cut: crate::replay::LogCut,
}

/// The frozen report of a campaign (and village; `None`: the whole campaign).
///
/// # Errors
/// A database failure.
pub async fn frozen(pool: &Pool, campaign: Uuid, village: Option<Uuid>) -> Result<Option<Frozen>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT report, log_snapshot, log_position FROM summary_reports WHERE campaign_id = $1 AND village_id = $2",
        )
        .await?;
    let village = village.unwrap_or(Uuid::nil());
    Ok(client
        .query_opt(&stmt, &[&campaign, &village])
        .await?
        .map(|r| Frozen { report: r.get(0), cut: crate::replay::LogCut { snapshot: r.get(1), position: r.get(2) } }))
}

/// How many reports of a campaign are frozen (the whole campaign's and its villages').
///
/// # Errors
/// A database failure.
pub async fn frozen_count(pool: &Pool, campaign: Uuid) -> Result<i64, StoreError> {
    let client = pool.get().await?;
    let stmt = client.prepare_cached("SELECT count(*) FROM summary_reports WHERE campaign_id = $1").await?;
    Ok(client.query_one(&stmt, &[&campaign]).await?.get(0))
}

/// Freezes reports of a campaign — `(village, report)`, `None` for the whole campaign — all
/// computed at `cut`, in one transaction, each unless one was frozen first (by another
/// request or server: the first freeze wins). Rows go in by village id, so two freezes of the
/// same campaign take their locks in the same order.
///
/// # Errors
/// A database failure.
pub async fn freeze(
    pool: &Pool,
    campaign: Uuid,
    reports: &[(Option<Uuid>, serde_json::Value)],
    cut: &crate::replay::LogCut,
) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO summary_reports (campaign_id, village_id, report, log_snapshot, log_position) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (campaign_id, village_id) DO NOTHING",
        )
        .await?;
    let mut rows: Vec<(Uuid, &serde_json::Value)> =
        reports.iter().map(|(v, r)| (v.unwrap_or(Uuid::nil()), r)).collect();
    rows.sort_by_key(|(v, _)| *v);
    for (village, report) in rows {
        tx.execute(&stmt, &[&campaign, &village, report, &cut.snapshot, &cut.position]).await?;
    }
    tx.commit().await?;
    Ok(())
}
