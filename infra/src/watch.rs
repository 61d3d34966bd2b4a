//! The integrity watch: verification that runs continuously, with an alarm.
//!
//! `append_events()` trusts what the service role sends: the hash of each event and the
//! ledger row. Recomputing the hash in SQL would need the canonical bytes (docs/integrity.md)
//! written a second time, in PL/pgSQL, and paid on every append; a row's unit scope would need
//! the lifecycle's fold in SQL, which the design keeps out of the database. Instead, every event
//! that becomes visible in the feed is checked here, soon after: its case's chain is recomputed
//! from the first event, and the case's ledger row is compared with the replay of its events.
//! A failure is an alarm (an ERROR log line, a counter in `/metrics`, the watch's status for
//! auditors), never a silent repair: the log is evidence and stays as it is. The watch starts at
//! the feed's head when the service starts; what came before is checked by `huiyin verify` and
//! the signed checkpoints.
//!
//! One pass reads a feed page, the whole histories of the cases it touches and their ledger
//! rows in one repeatable-read snapshot (four statements, whatever the page holds): events and
//! their row are written in one transaction, so a snapshot sees both or neither, and a case
//! appended to meanwhile is never reported as a mismatch. The histories stream in case order
//! and each is judged as it completes, so a pass holds the page, its cases' rows and one history
//! at a time, however far behind the watch is.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Utc};
use domain::CaseId;
use futures_util::{StreamExt, pin_mut};
use serde::Serialize;
use tokio_postgres::IsolationLevel;
use uuid::Uuid;

use crate::error::StoreError;
use crate::ledger::{LedgerRow, ROW_JSON};
use crate::store::{COLUMNS, FeedCursor, StoredEvent, check_chain, fold};

/// How many failures the status keeps (the newest; `failures_total` counts them all).
pub const KEPT_FAILURES: usize = 100;

/// One thing the watch found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchFailure {
    /// The case.
    pub case_id: Uuid,
    /// What is wrong.
    pub problem: String,
    /// When the watch found it.
    pub found_at: DateTime<Utc>,
}

/// Where a watch that starts now begins: the position the latest signed checkpoint covers (the
/// history before it is the checkpoint's, and `huiyin verify`'s, to vouch for), or the start of
/// the log when there is none. Everything appended after it, including while no service ran,
/// is checked.
pub async fn start(pool: &deadpool_postgres::Pool) -> Result<String, StoreError> {
    let latest = crate::integrity::latest(pool).await?;
    Ok(latest.and_then(|c| c.state()).map_or_else(|| "0".to_owned(), |s| s.cursor.to_string()))
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
    /// Everything found wrong since the service started.
    pub failures_total: u64,
    /// The newest failures, newest first (at most [`KEPT_FAILURES`]).
    pub failures: VecDeque<WatchFailure>,
    /// When the watch last ran.
    pub last_run_at: Option<DateTime<Utc>>,
    /// When it last found the feed's head (nothing visible left to check).
    pub caught_up_at: Option<DateTime<Utc>>,
}

impl WatchStatus {
    fn record(&mut self, found: &[WatchFailure]) {
        self.failures_total += found.len() as u64;
        for f in found {
            self.failures.push_front(f.clone());
        }
        self.failures.truncate(KEPT_FAILURES);
    }
}

/// Checks the events after `status.cursor` (at most `batch` of them): every case they touch has
/// its whole chain recomputed and its ledger row compared with the replay. Returns the new
/// failures, which are also recorded in `status`, and whether the feed's head was reached.
pub async fn run_once(
    pool: &deadpool_postgres::Pool,
    status: &mut WatchStatus,
    batch: i64,
) -> Result<(Vec<WatchFailure>, bool), StoreError> {
    let after: FeedCursor = status.cursor.parse().unwrap_or_default();
    let mut client = pool.get().await?;
    let tx = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await?;
    let page = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM events \
                 WHERE (tx_id, position) > ($1::bigint::text::xid8, $2) \
                   AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY events.tx_id, events.position LIMIT $3"
            ),
            &[&after.tx_id, &after.position, &batch],
        )
        .await?
        .iter()
        .map(StoredEvent::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<Uuid> = {
        let mut ids: Vec<Uuid> = page.iter().map(|e| e.case_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let mut rows: BTreeMap<Uuid, LedgerRow> = BTreeMap::new();
    for r in &tx.query(&format!("SELECT {ROW_JSON} FROM ledger l WHERE case_id = ANY($1)"), &[&ids]).await? {
        let row = LedgerRow::from_row(r)?;
        rows.insert(row.case_id, row);
    }
    let mut records: BTreeMap<Uuid, serde_json::Value> = BTreeMap::new();
    for r in &tx
        .query(
            &format!("SELECT record_id, {} FROM records WHERE record_id = ANY($1)", crate::records::PROJECTION_JSON),
            &[&ids],
        )
        .await?
    {
        records.insert(r.get(0), r.get(1));
    }
    let now = Utc::now();
    // The histories stream while each is judged, so the statement stays open for the pass's
    // hashing and folding; a deep backlog on a loaded machine must not hit the service's
    // statement timeout and stall the watch on one page.
    tx.batch_execute("SET LOCAL statement_timeout = '5min'").await?;
    let mut judge = Judge { rows, records, now, unjudged: ids.iter().copied().collect(), found: Vec::new(), judged: 0 };
    let stream = tx
        .query_raw(&format!("SELECT {COLUMNS} FROM events WHERE case_id = ANY($1) ORDER BY case_id, version"), [&ids])
        .await?;
    pin_mut!(stream);
    let mut history: Vec<StoredEvent> = Vec::new();
    while let Some(row) = stream.next().await {
        let e = StoredEvent::from_row(&row?)?;
        if history.first().is_some_and(|h| h.case_id != e.case_id) {
            judge.history(&history);
            history.clear();
        }
        history.push(e);
    }
    judge.history(&history);
    let (found, judged) = judge.rest();
    tx.commit().await?;
    drop(client);

    if let Some(last) = page.last() {
        status.cursor = FeedCursor::after(last).to_string();
    }
    status.events_checked += page.len() as u64;
    status.cases_checked += judged;
    status.last_run_at = Some(now);
    let caught_up = page.len() < usize::try_from(batch).unwrap_or(usize::MAX);
    if caught_up {
        status.caught_up_at = Some(now);
    }
    status.record(&found);
    Ok((found, caught_up))
}

/// Judges the histories of one pass as they stream in, in case order.
struct Judge {
    rows: BTreeMap<Uuid, LedgerRow>,
    records: BTreeMap<Uuid, serde_json::Value>,
    now: DateTime<Utc>,
    /// The page's cases not judged yet.
    unjudged: BTreeSet<Uuid>,
    found: Vec<WatchFailure>,
    /// How many cases were judged.
    judged: u64,
}

impl Judge {
    /// Judges one case's whole history (all of one case's events, versions in order; nothing
    /// when empty).
    fn history(&mut self, events: &[StoredEvent]) {
        let Some(id) = events.first().map(|e| e.case_id) else { return };
        self.unjudged.remove(&id);
        self.one(id, events);
    }

    /// Judges the page's cases that had no history (none can, in the page's own snapshot: kept
    /// so that such a case is reported rather than skipped) and returns everything found and how
    /// many cases were judged.
    fn rest(mut self) -> (Vec<WatchFailure>, u64) {
        for id in std::mem::take(&mut self.unjudged) {
            self.one(id, &[]);
        }
        (self.found, self.judged)
    }

    fn one(&mut self, id: Uuid, events: &[StoredEvent]) {
        self.judged += 1;
        let problem = if events.first().is_some_and(|e| !e.is_case_event()) {
            check_record(id, events, self.records.get(&id))
        } else {
            check(id, events, self.rows.get(&id))
        };
        if let Some(problem) = problem {
            self.found.push(WatchFailure { case_id: id, problem, found_at: self.now });
        }
    }
}

/// What is wrong with one case: its chain, its fold, or its ledger row against the replay.
fn check(id: Uuid, events: &[StoredEvent], row: Option<&LedgerRow>) -> Option<String> {
    let chain = check_chain(id, events);
    if !chain.ok() {
        return Some(format!(
            "the hash chain fails at version {}: {}",
            chain.first_bad_version.unwrap_or_default(),
            chain.problem.unwrap_or_default()
        ));
    }
    let case = match fold(CaseId::from_uuid(id), events) {
        Ok(c) => c,
        Err(e) => return Some(format!("the history does not fold: {e}")),
    };
    match (case, row) {
        (Some(case), Some(row)) if *row != LedgerRow::from_case(&case, false) => {
            Some("the ledger row differs from the replay of the case's events".into())
        }
        (Some(_), None) => Some("the case has no ledger row".into()),
        (None, Some(_)) => Some("the ledger has a row for a case without events".into()),
        _ => None,
    }
}

/// What is wrong with one record of the campaign: its chain, its fold, or its projection row
/// against the replay.
fn check_record(id: Uuid, events: &[StoredEvent], row: Option<&serde_json::Value>) -> Option<String> {
    let chain = check_chain(id, events);
    if !chain.ok() {
        return Some(format!(
            "the hash chain fails at version {}: {}",
            chain.first_bad_version.unwrap_or_default(),
            chain.problem.unwrap_or_default()
        ));
    }
    match (crate::records::replay_projection(id, events), row) {
        (Err(e), _) => Some(format!("the history does not fold: {e}")),
        (Ok(Some(replayed)), Some(stored)) if replayed != *stored => {
            Some("the record's row differs from the replay of its events".into())
        }
        (Ok(Some(_)), None) => Some("the record has no row".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(n: u128) -> WatchFailure {
        WatchFailure { case_id: Uuid::from_u128(n), problem: "x".into(), found_at: Utc::now() }
    }

    /// The status once kept the *first* 100 failures forever: after a burst of alarms, a forgery
    /// made later never showed. It keeps the newest, and counts them all.
    #[test]
    fn the_status_keeps_the_newest_failures_and_counts_every_one() {
        let mut status = WatchStatus::default();
        status.record(&(1..=150).map(failure).collect::<Vec<_>>());
        status.record(&[failure(999)]);
        assert_eq!(status.failures_total, 151);
        assert_eq!(status.failures.len(), KEPT_FAILURES);
        assert_eq!(status.failures.front().map(|f| f.case_id), Some(Uuid::from_u128(999)));
        assert_eq!(status.failures.get(1).map(|f| f.case_id), Some(Uuid::from_u128(150)));
        assert_eq!(status.failures.back().map(|f| f.case_id), Some(Uuid::from_u128(52)));
    }
}
