//! The integrity watch: verification that runs continuously, with an alarm.
//!
//! `append_events()` trusts what the service role sends: the hash of each event and the
//! ledger row. Recomputing the hash in SQL would need the canonical bytes (docs/integrity.md)
//! written a second time, in PL/pgSQL, and paid on every append; a row's unit scope would need
//! the lifecycle's fold in SQL, which the design keeps out of the database. Instead, every event
//! that becomes visible in the feed is checked here, soon after: its case's chain is recomputed
//! from the first event, and the case's ledger row is compared with the replay of its events.
//! A failure is an alarm (an ERROR log line, the watch's status for auditors), never a silent
//! repair: the log is evidence and stays as it is. The watch starts at the feed's head when the
//! service starts; what came before is checked by `huiyin verify` and the signed checkpoints.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use domain::CaseId;
use serde::Serialize;
use uuid::Uuid;

use crate::error::StoreError;
use crate::ledger::{Ledger, LedgerRow};
use crate::store::{EventStore, FeedCursor};

/// One thing the watch found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchFailure {
    /// The case.
    pub case_id: Uuid,
    /// What is wrong.
    pub problem: String,
}

/// The feed position of the newest visible event: where a watch that starts now begins (the
/// history before it is `huiyin verify`'s and the signed checkpoints' to check).
pub async fn head(store: &EventStore) -> Result<String, StoreError> {
    let client = store.pool().get().await?;
    let row = client
        .query_opt(
            "SELECT tx_id::text::bigint, position FROM events \
             WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY tx_id DESC, position DESC LIMIT 1",
            &[],
        )
        .await?;
    Ok(row.map_or_else(|| "0".to_owned(), |r| format!("{}.{}", r.get::<_, i64>(0), r.get::<_, i64>(1))))
}

/// Where the watch stands.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WatchStatus {
    /// The feed position checked up to.
    pub cursor: String,
    /// Events checked since the service started.
    pub events_checked: u64,
    /// Cases checked since the service started.
    pub cases_checked: u64,
    /// Everything found wrong since the service started (the first 100).
    pub failures: Vec<WatchFailure>,
    /// When the watch last ran.
    pub last_run_at: Option<DateTime<Utc>>,
}

/// Checks the events after `status.cursor` (at most `batch` of them): every case they touch has
/// its whole chain recomputed and its ledger row compared with the replay. Returns the new
/// failures, which are also added to `status`.
pub async fn run_once(
    store: &EventStore,
    ledger: &Ledger,
    status: &mut WatchStatus,
    batch: i64,
) -> Result<Vec<WatchFailure>, StoreError> {
    let after: FeedCursor = status.cursor.parse().unwrap_or_default();
    let events = store.read_feed(after, batch).await?;
    let cases: BTreeSet<Uuid> = events.iter().map(|e| e.case_id).collect();
    let mut found = Vec::new();
    for id in &cases {
        let case_id = CaseId::from_uuid(*id);
        let chain = store.verify_case(case_id).await?;
        if !chain.ok() {
            found.push(WatchFailure {
                case_id: *id,
                problem: format!(
                    "the hash chain fails at version {}: {}",
                    chain.first_bad_version.unwrap_or_default(),
                    chain.problem.clone().unwrap_or_default()
                ),
            });
            continue;
        }
        let replayed = match store.load(case_id).await {
            Ok(l) => l.case,
            Err(e) => {
                found.push(WatchFailure { case_id: *id, problem: format!("the history does not fold: {e}") });
                continue;
            }
        };
        let row = ledger.row(case_id).await?;
        match (replayed, row) {
            (Some(case), Some(row)) if row != LedgerRow::from_case(&case, false) => found.push(WatchFailure {
                case_id: *id,
                problem: "the ledger row differs from the replay of the case's events".into(),
            }),
            (Some(_), None) => found.push(WatchFailure { case_id: *id, problem: "the case has no ledger row".into() }),
            _ => {}
        }
    }
    if let Some(last) = events.last() {
        status.cursor = FeedCursor::after(last).to_string();
    }
    status.events_checked += events.len() as u64;
    status.cases_checked += cases.len() as u64;
    status.last_run_at = Some(Utc::now());
    for f in &found {
        if status.failures.len() < 100 {
            status.failures.push(f.clone());
        }
    }
    Ok(found)
}
