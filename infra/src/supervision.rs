//! What the supervision rules read (the ledger: overdue clocks, repeat dissatisfaction, refused
//! returns, duplicates) and the open items' list. The rules themselves are
//! `domain::records::supervision`; the items are records (`crate::records`).

use chrono::{DateTime, Utc};
use std::collections::HashSet;
use uuid::Uuid;

use crate::db::Pool;
use crate::error::StoreError;
use crate::records::RecordRow;

/// A running clock past its due time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverdueClock {
    /// The case.
    pub case_id: Uuid,
    /// Its lead unit.
    pub unit_id: Option<Uuid>,
    /// The campaign it was received in.
    pub campaign_id: Option<Uuid>,
    /// The clock's stage (`sign_for`, …, `acknowledgement`, `overall`).
    pub stage: String,
    /// Its due time.
    pub due_at: DateTime<Utc>,
}

/// Every running clock past due at `now`: the stage's (unless it stands still), the
/// acknowledgement's and the overall clock, as the overdue view counts them.
///
/// # Errors
/// A database failure.
pub async fn overdue_clocks(pool: &Pool, now: DateTime<Utc>) -> Result<Vec<OverdueClock>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT l.case_id, l.unit_id, l.campaign_id, c.stage, c.due FROM ledger l CROSS JOIN LATERAL (VALUES \
                    (l.deadline_stage, CASE WHEN l.paused THEN NULL ELSE l.due_at END), \
                    ('acknowledgement', l.ack_due_at), ('overall', l.overall_due_at)) AS c(stage, due) \
             WHERE l.next_due_at < $1 AND c.due < $1 AND c.stage IS NOT NULL",
        )
        .await?;
    Ok(client
        .query(&stmt, &[&now])
        .await?
        .iter()
        .map(|r| OverdueClock {
            case_id: r.get(0),
            unit_id: r.get(1),
            campaign_id: r.get(2),
            stage: r.get(3),
            due_at: r.get(4),
        })
        .collect())
}

/// A case a count-based rule may raise for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseCounts {
    /// The case.
    pub case_id: Uuid,
    /// Its lead unit.
    pub unit_id: Option<Uuid>,
    /// The campaign it was received in.
    pub campaign_id: Option<Uuid>,
    /// Dissatisfied ratings it has had.
    pub dissatisfied: i32,
    /// Returns the dispatcher refused.
    pub returns_refused: i32,
}

/// The cases with two or more dissatisfied ratings or a refused return.
///
/// # Errors
/// A database failure.
pub async fn disputed_cases(pool: &Pool) -> Result<Vec<CaseCounts>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT case_id, unit_id, campaign_id, dissatisfied_count, returns_refused FROM ledger \
             WHERE dissatisfied_count >= 2 OR returns_refused > 0",
        )
        .await?;
    Ok(client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| CaseCounts {
            case_id: r.get(0),
            unit_id: r.get(1),
            campaign_id: r.get(2),
            dissatisfied: r.get(3),
            returns_refused: r.get(4),
        })
        .collect())
}

/// A case with duplicates linked to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicated {
    /// The case.
    pub case_id: Uuid,
    /// Its lead unit.
    pub unit_id: Option<Uuid>,
    /// The campaign it was received in.
    pub campaign_id: Option<Uuid>,
    /// How many cases are linked to it as its duplicates.
    pub duplicates: i64,
}

/// The cases with at least `min` duplicates linked to them.
///
/// # Errors
/// A database failure.
pub async fn duplicated_cases(pool: &Pool, min: i64) -> Result<Vec<Duplicated>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT t.case_id, t.unit_id, t.campaign_id, count(*) FROM ledger d JOIN ledger t ON t.case_id = d.duplicate_of \
             WHERE d.duplicate_of IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) >= $1",
        )
        .await?;
    Ok(client
        .query(&stmt, &[&min])
        .await?
        .iter()
        .map(|r| Duplicated { case_id: r.get(0), unit_id: r.get(1), campaign_id: r.get(2), duplicates: r.get(3) })
        .collect())
}

/// Which of `ids` name a record already (a raised item).
///
/// # Errors
/// A database failure.
pub async fn existing(pool: &Pool, ids: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
    let client = pool.get().await?;
    let stmt = client.prepare_cached("SELECT record_id FROM records WHERE record_id = ANY($1)").await?;
    Ok(client.query(&stmt, &[&ids]).await?.iter().map(|r| r.get(0)).collect())
}

/// Which supervision items a list shows.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    /// Only open items (else every item).
    pub open_only: bool,
    /// Only items supervising this unit (a handler's scope, or a filter).
    pub unit_id: Option<Uuid>,
    /// Only items about this case.
    pub case_id: Option<Uuid>,
    /// Only items about cases received in this campaign.
    pub campaign_id: Option<Uuid>,
    /// At most this many, newest first.
    pub limit: i64,
    /// Only items raised before this one (its raise time and id): the page after it.
    pub after: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
}

/// Supervision items, newest first (by raise time, then id, both descending: a keyset
/// [`ItemFilter::after`] pages through).
///
/// # Errors
/// A database failure.
pub async fn items(pool: &Pool, f: &ItemFilter) -> Result<Vec<RecordRow>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {} FROM records WHERE stream_type = 'supervision' \
               AND (NOT $1 OR doc->>'closed_at' IS NULL) \
               AND ($2::uuid IS NULL OR $2 = ANY(unit_ids)) \
               AND ($3::uuid IS NULL OR doc->>'case' = $3::text) \
               AND ($7::uuid IS NULL OR campaign_id = $7) \
               AND ($5::timestamptz IS NULL OR ((doc->>'raised_at')::timestamptz, record_id) < ($5, $6::uuid)) \
             ORDER BY (doc->>'raised_at')::timestamptz DESC, record_id DESC LIMIT $4",
            crate::records::ROW
        ))
        .await?;
    let (after_at, after_id) = (f.after.map(|a| a.0), f.after.map(|a| a.1));
    let rows = client
        .query(&stmt, &[&f.open_only, &f.unit_id, &f.case_id, &f.limit, &after_at, &after_id, &f.campaign_id])
        .await?;
    Ok(rows.iter().map(crate::records::row_of).collect())
}
