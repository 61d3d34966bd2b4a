//! The event store: one append-only table, one round trip per append (concurrent appends may
//! share one transaction: [`EventStore::batched`]).
//!
//! Guarantees (each has a test in `tests/integration/store.rs`):
//! - **No lost update.** The caller states the version it decided against; a mismatch is
//!   [`StoreError::Conflict`] and nothing is written. The unique `(case_id, version)` key is the
//!   backstop.
//! - **No fork.** Appends to one case are serialised by a transaction-level advisory lock taken
//!   as the first statement of `append_events()` (of `append_batch()`, every case of the batch in
//!   sorted order), and every event stores the SHA-256 of its
//!   canonical bytes chained to the previous event of the case ([`crate::hash`]).
//! - **No duplicate.** A repeated idempotency key writes nothing and returns the first result.
//! - **No skip in the feed.** [`EventStore::read_feed`] returns events in `(tx_id, position)`
//!   order and only those written by transactions older than every running one, so an event
//!   that commits late can never fall behind a consumer's cursor.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use domain::{Case, CaseEvent, CaseId, HistoryError, replay};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::Pool;
use crate::error::StoreError;
use crate::hash::{self, GENESIS, HashInput};
use crate::vault::SubjectKey;

mod verify;

/// Who and what caused an event: recorded with it and covered by its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The caller's id (the token's `sub`).
    pub actor_id: String,
    /// The caller's role.
    pub actor_role: String,
    /// The request that carried the command.
    pub request_id: Option<String>,
    /// The idempotency key the client sent.
    pub idempotency_key: Option<String>,
    /// Groups events caused by one business action across cases.
    pub correlation_id: Option<Uuid>,
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event.
    pub event: CaseEvent,
    /// When it happened; truncated to microseconds on append.
    pub occurred_at: DateTime<Utc>,
    /// Who caused it.
    pub metadata: Metadata,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    /// Global position (insertion order, not commit order).
    pub position: i64,
    /// The case.
    pub case_id: Uuid,
    /// The version within the case, from 1, contiguous.
    pub version: u32,
    /// The stable type name.
    pub event_type: String,
    /// The schema version it was written with.
    pub schema_version: u16,
    /// The payload as written.
    pub payload: Value,
    /// The metadata as written.
    pub metadata: Value,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// When the database recorded it.
    pub recorded_at: DateTime<Utc>,
    /// The writing transaction's id.
    pub tx_id: i64,
    /// The previous event's hash.
    #[serde(with = "hex_bytes")]
    pub prev_hash: [u8; 32],
    /// This event's hash.
    #[serde(with = "hex_bytes")]
    pub hash: [u8; 32],
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
}

impl StoredEvent {
    /// The typed event, upcast to the current schema.
    pub fn decode(&self) -> Result<CaseEvent, HistoryError> {
        CaseEvent::from_stored(&self.event_type, self.schema_version, self.payload.clone())
    }

    /// The stream type: the event type's prefix (`case`, `meeting`, …).
    pub fn stream_type(&self) -> &str {
        domain::records::stream_type_of(&self.event_type)
    }

    /// Whether it belongs to a case (not to a campaign's record).
    pub fn is_case_event(&self) -> bool {
        self.stream_type() == "case"
    }

    /// The hash recomputed from the stored fields and the given previous hash.
    pub fn recompute_hash(&self, prev_hash: &[u8; 32]) -> [u8; 32] {
        hash::event_hash(&HashInput {
            case_id: self.case_id,
            version: self.version,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            occurred_at: self.occurred_at,
            payload: &self.payload,
            metadata: &self.metadata,
            prev_hash,
        })
    }

    /// Reads an event from a row of the `COLUMNS` select.
    pub fn from_row(row: &Row) -> Result<Self, StoreError> {
        let bytes32 =
            |v: Vec<u8>| <[u8; 32]>::try_from(v).map_err(|_| StoreError::Vault("stored hash is not 32 bytes"));
        Ok(Self {
            position: row.get(0),
            case_id: row.get(1),
            version: u32::try_from(row.get::<_, i32>(2)).unwrap_or(0),
            event_type: row.get(3),
            schema_version: u16::try_from(row.get::<_, i16>(4)).unwrap_or(0),
            payload: stored_json(row, 5)?,
            metadata: stored_json(row, 6)?,
            occurred_at: row.get(7),
            recorded_at: row.get(8),
            tx_id: row.get(9),
            prev_hash: bytes32(row.get(10))?,
            hash: bytes32(row.get(11))?,
        })
    }
}

/// A `jsonb` column as the row holds it, through [`hash::Parsed`]: never through `Value`'s own
/// `Deserialize`, which a build with serde_json's `raw_value` feature makes read some objects as
/// other values (see `From<Parsed> for Value`), so that a hash recomputed from it would vouch
/// for content the row does not hold.
///
/// # Errors
/// [`StoreError::Db`] when the column is not JSON.
pub(crate) fn stored_json(row: &Row, idx: usize) -> Result<Value, StoreError> {
    let tokio_postgres::types::Json(parsed): tokio_postgres::types::Json<hash::Parsed<'_>> = row.try_get(idx)?;
    Ok(parsed.into())
}

// Its output column `tx_id` (a bigint) shadows the table's xid8 column in ORDER BY: a query
// selecting it orders by `events.tx_id`, or no index gives the order and every page sorts the
// rest of the log.
/// The columns a [`StoredEvent`] is read from (`StoredEvent::from_row`'s order).
pub const COLUMNS: &str = "position, case_id, version, event_type, schema_version, payload, metadata, \
                       occurred_at, recorded_at, tx_id::text::bigint, prev_hash, hash";

/// The columns an event's hash covers, with its stored hash last: what verification reads
/// (`case_id, version, event_type, schema_version, payload, metadata, occurred_at, prev_hash,
/// hash`, in this order); the benchmark reads the same ones raw to compare the two.
pub const HASHED_COLUMNS: &str =
    "case_id, version, event_type, schema_version, payload, metadata, occurred_at, prev_hash, hash";

/// A case loaded from the log.
#[derive(Debug, Clone)]
pub struct LoadedCase {
    /// The folded state; `None` when the case has no events.
    pub case: Option<Case>,
    /// Its events, in version order.
    pub events: Vec<StoredEvent>,
}

impl LoadedCase {
    /// The version the case is at (0 when it has no events).
    pub fn version(&self) -> u32 {
        self.events.last().map_or(0, |e| e.version)
    }
    /// The hash of the last event (the genesis hash when there is none).
    pub fn head_hash(&self) -> [u8; 32] {
        self.events.last().map_or(GENESIS, |e| e.hash)
    }
}

/// Folds stored events into a case. The events of another stream (a campaign's record, whose
/// event types do not start with `case.`) are no case: `None`, as for an empty history.
pub fn fold(case_id: CaseId, events: &[StoredEvent]) -> Result<Option<Case>, StoreError> {
    if events.first().is_some_and(|e| !e.is_case_event()) {
        return Ok(None);
    }
    let decoded = events
        .iter()
        .map(|e| e.decode().map(|d| (d, e.occurred_at)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| StoreError::History { case: case_id.as_uuid(), source })?;
    replay(case_id, decoded.iter().map(|(e, t)| (e, *t)))
        .map_err(|source| StoreError::History { case: case_id.as_uuid(), source })
}

/// An idempotency key, scoped by the caller, with the hash of the request it first came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// Whose key (the token's subject).
    pub scope: String,
    /// The key the client sent.
    pub key: String,
    /// SHA-256 of what the request asked for.
    pub request_hash: [u8; 32],
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// New events were written.
    Appended {
        /// The case.
        case_id: Uuid,
        /// The first new version.
        first_version: u32,
        /// The last new version.
        last_version: u32,
        /// The first new position.
        first_position: i64,
        /// The last new position.
        last_position: i64,
        /// The chain's new head: the SHA-256 of the last new event (32 bytes), the
        /// `prev_hash` of the case's next append.
        last_hash: [u8; 32],
    },
    /// The idempotency key was seen before with the same request: nothing was written.
    Duplicate {
        /// The case the first request wrote to.
        case_id: Uuid,
        /// The first version it wrote.
        first_version: u32,
        /// The last version it wrote.
        last_version: u32,
    },
}

impl AppendOutcome {
    /// The case written to.
    pub fn case_id(&self) -> Uuid {
        match self {
            Self::Appended { case_id, .. } | Self::Duplicate { case_id, .. } => *case_id,
        }
    }
    /// The version the write left the case at.
    pub fn last_version(&self) -> u32 {
        match self {
            Self::Appended { last_version, .. } | Self::Duplicate { last_version, .. } => *last_version,
        }
    }
}

/// A feed consumer's position: the `(tx_id, position)` of the last event it has seen.
/// Rendered as `"<tx_id>.<position>"`; `"0"` (or `"0.0"`) is the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct FeedCursor {
    /// The transaction id of the last event seen.
    pub tx_id: i64,
    /// The position of the last event seen.
    pub position: i64,
}

impl FeedCursor {
    /// The start of the feed.
    pub const START: Self = Self { tx_id: 0, position: 0 };

    /// The cursor just after an event.
    pub fn after(e: &StoredEvent) -> Self {
        Self { tx_id: e.tx_id, position: e.position }
    }
}

impl std::fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.tx_id, self.position)
    }
}

impl std::str::FromStr for FeedCursor {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const BAD: &str = "a feed position looks like 0 or <tx_id>.<position>";
        if s == "0" {
            return Ok(Self::START);
        }
        let (t, p) = s.split_once('.').ok_or(BAD)?;
        let tx_id: i64 = t.parse().map_err(|_| BAD)?;
        let position: i64 = p.parse().map_err(|_| BAD)?;
        if tx_id < 0 || position < 0 {
            return Err(BAD);
        }
        Ok(Self { tx_id, position })
    }
}

/// The result of checking one case's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainCheck {
    /// The case.
    pub case_id: Uuid,
    /// How many events were checked.
    pub events: u32,
    /// The hash of the last event.
    #[serde(with = "hex_bytes")]
    pub head_hash: [u8; 32],
    /// The first version that fails, if any.
    pub first_bad_version: Option<u32>,
    /// What is wrong with it.
    pub problem: Option<String>,
}

impl ChainCheck {
    /// Whether the chain is intact.
    pub fn ok(&self) -> bool {
        self.first_bad_version.is_none()
    }
}

/// Checks a case's chain: versions contiguous from 1, each `prev_hash` the previous hash, each
/// hash the recomputed one.
pub fn check_chain(case_id: Uuid, events: &[StoredEvent]) -> ChainCheck {
    let mut prev = GENESIS;
    for (i, e) in events.iter().enumerate() {
        let expected_version = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let problem = if e.version != expected_version {
            Some(format!("version {expected_version} is missing (found {})", e.version))
        } else if e.prev_hash != prev {
            Some("prev_hash does not match the previous event".to_owned())
        } else if e.recompute_hash(&prev) != e.hash {
            Some("hash does not match the event's content".to_owned())
        } else {
            None
        };
        if let Some(problem) = problem {
            return ChainCheck {
                case_id,
                events: u32::try_from(events.len()).unwrap_or(u32::MAX),
                head_hash: prev,
                first_bad_version: Some(expected_version),
                problem: Some(problem),
            };
        }
        prev = e.hash;
    }
    ChainCheck {
        case_id,
        events: u32::try_from(events.len()).unwrap_or(u32::MAX),
        head_hash: prev,
        first_bad_version: None,
        problem: None,
    }
}

/// The result of checking the whole log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Cases checked.
    pub cases: u64,
    /// Events checked.
    pub events: u64,
    /// Every case whose chain fails.
    pub failures: Vec<ChainCheck>,
}

/// The event store.
#[derive(Clone)]
pub struct EventStore {
    pool: Pool,
    batcher: Option<Batcher>,
}

/// The coalescing of a batched store: the queue the batch writers take appends from, and the
/// permits of the transactions in flight (one each), which a lone append takes too.
#[derive(Clone)]
struct Batcher {
    queue: tokio::sync::mpsc::Sender<Pending>,
    writing: std::sync::Arc<tokio::sync::Semaphore>,
}

/// How many append transactions (alone or batched) a batched store runs at once, unless the
/// service is told otherwise (`HUIYIN_APPEND_WRITERS`). Two measured best on the benchmark's two
/// cores (BENCHMARKS.md, "Appends written set-based"): one leaves the CPU idle while a batch commits, and more split
/// the queue into smaller batches, each paying its statements' set-up again.
pub const BATCH_WRITERS: usize = 2;

impl EventStore {
    /// A store that writes every append in its own transaction, in one round trip.
    pub fn new(pool: Pool) -> Self {
        Self { pool, batcher: None }
    }

    /// A store that coalesces concurrent appends into shared transactions, with
    /// [`BATCH_WRITERS`] batches in flight (needs a Tokio runtime: it starts the batch writers).
    pub fn batched(pool: Pool) -> Self {
        Self::batched_with(pool, BATCH_WRITERS)
    }

    /// A store that coalesces concurrent appends into shared transactions, with at most
    /// `writers` transactions in flight at once (at least one). An append that finds one of them
    /// free is written at once, on the caller's task, in its own transaction; appends that come
    /// while all are taken queue up, and the next free writer takes the queue whole into one
    /// `append_batch()` (V37), which writes each table once for all of them. At 32 concurrent
    /// appenders on two cores this doubled the appends per second (BENCHMARKS.md).
    pub fn batched_with(pool: Pool, writers: usize) -> Self {
        let writers = writers.max(1);
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let queue = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        let writing = std::sync::Arc::new(tokio::sync::Semaphore::new(writers));
        for _ in 0..writers {
            tokio::spawn(batch_writer(pool.clone(), queue.clone(), writing.clone()));
        }
        Self { pool, batcher: Some(Batcher { queue: tx, writing }) }
    }

    /// The pool, for callers that run their own reads.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Loads a case's events, optionally only up to a version or a moment, and folds them.
    pub async fn load_until(
        &self,
        case_id: CaseId,
        up_to_version: Option<u32>,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<LoadedCase, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM events WHERE case_id = $1 AND version <= $2 AND recorded_at <= $3 ORDER BY version"
            ))
            .await?;
        let max_version = up_to_version.map_or(i32::MAX, |v| i32::try_from(v).unwrap_or(i32::MAX));
        let as_of = as_of.unwrap_or(DateTime::<Utc>::MAX_UTC);
        let rows = client.query(&stmt, &[&case_id.as_uuid(), &max_version, &as_of]).await?;
        let events = rows.iter().map(StoredEvent::from_row).collect::<Result<Vec<_>, _>>()?;
        let case = fold(case_id, &events)?;
        Ok(LoadedCase { case, events })
    }

    /// Loads a case and folds it.
    pub async fn load(&self, case_id: CaseId) -> Result<LoadedCase, StoreError> {
        self.load_until(case_id, None, None).await
    }

    /// Appends events to a case that is at `expected_version` with head `prev_hash`, in one
    /// round trip. With an idempotency key seen before, nothing is written and the first
    /// result is returned ([`AppendOutcome::Duplicate`]), or [`StoreError::IdempotencyMismatch`]
    /// when the key came with another request.
    ///
    /// `after` is the case's state once these events are applied (the caller folded them to
    /// decide); its ledger row is written in the same transaction as the events.
    ///
    /// When the store batches ([`EventStore::batched`]), concurrent appends are coalesced into one
    /// transaction by `append_batch()`; each keeps its own checks and outcome.
    pub async fn append(
        &self,
        case_id: CaseId,
        expected_version: u32,
        prev_hash: [u8; 32],
        events: &[NewEvent],
        idempotency: Option<&IdempotencyKey>,
        after: &Case,
    ) -> Result<AppendOutcome, StoreError> {
        self.submit(Prepared::new(case_id, expected_version, prev_hash, events, idempotency, after)).await
    }

    /// Writes a prepared append: on its own when the store does not batch or one of its writers
    /// is free (then on the caller's task, with no hand-over), else through the batch queue.
    async fn submit(&self, req: Prepared) -> Result<AppendOutcome, StoreError> {
        match &self.batcher {
            Some(b) => {
                // A permit is only free when no batch writer waits for one (the semaphore hands
                // released permits to its waiters first), so a queued append is never overtaken
                // for long.
                if let Ok(_writing) = b.writing.try_acquire() {
                    return append_direct(&self.pool, &req).await;
                }
                let (reply, rx) = tokio::sync::oneshot::channel();
                if b.queue.send(Pending { req, reply }).await.is_err() {
                    return Err(StoreError::Vault("the append batcher stopped"));
                }
                rx.await.unwrap_or(Err(StoreError::Vault("the append batcher dropped a request")))
            }
            None => append_direct(&self.pool, &req).await,
        }
    }
    /// Registers a case (version 1 onwards) in one round trip: with the complainant's subject key
    /// ([`crate::vault::Vault::seal_for_append`]) and, for a citizen who registered online, the
    /// slow hash of the receipt secret they hold (V19 `receipt_secrets`), both written in the
    /// registration's transaction. With an idempotency key seen before, nothing is written (no
    /// key either) and the first result is returned. Coalesced with other appends when the store
    /// batches, as [`EventStore::append`].
    ///
    /// # Errors
    /// As [`EventStore::append`].
    pub async fn register(
        &self,
        case_id: CaseId,
        events: &[NewEvent],
        idempotency: Option<&IdempotencyKey>,
        after: &Case,
        subject_key: Option<&SubjectKey>,
        receipt_secret_hash: Option<&str>,
    ) -> Result<AppendOutcome, StoreError> {
        let mut req = Prepared::new(case_id, 0, GENESIS, events, idempotency, after);
        req.set_subject_key(subject_key);
        if let (Some(hash), Some(obj)) = (receipt_secret_hash, req.ledger.as_object_mut()) {
            obj.insert("receipt_secret".into(), Value::String(hash.to_owned()));
        }
        self.submit(req).await
    }

    /// Appends to `case_id` in one transaction that first takes the advisory locks of every case
    /// in `also_locked` and of `case_id`, in the fixed order `append_batch()` uses, then reads
    /// the facts a duplicate link needs from the ledger under those locks and lets `decide` turn
    /// them into the append. Two links decided this way can never both pass on facts the other
    /// changes (X→Y and Y→X at the same moment: the second sees the first).
    pub async fn append_with_link_facts<E>(
        &self,
        case_id: CaseId,
        of: CaseId,
        decide: impl FnOnce(LinkFacts) -> Result<PlannedAppend, E>,
    ) -> Result<Result<AppendOutcome, E>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(x::text, 0) AS k \
               FROM unnest($1::uuid[]) AS x ORDER BY 1) AS locks",
            &[&vec![case_id.as_uuid(), of.as_uuid()]],
        )
        .await?;
        let target = tx
            .query_opt(
                "SELECT duplicate_of IS NOT NULL, unit_id, co_unit_ids, accused_unit_id FROM ledger WHERE case_id = $1",
                &[&of.as_uuid()],
            )
            .await?;
        let has_duplicates: bool = tx
            .query_one("SELECT EXISTS (SELECT 1 FROM ledger WHERE duplicate_of = $1)", &[&case_id.as_uuid()])
            .await?
            .get(0);
        let facts = match target {
            None => LinkFacts { target_exists: false, target: domain::LinkTarget::default() },
            Some(r) => {
                let lead: Option<Uuid> = r.get(1);
                let co: Vec<Uuid> = r.get(2);
                LinkFacts {
                    target_exists: true,
                    target: domain::LinkTarget {
                        is_duplicate: r.get(0),
                        has_duplicates,
                        units: lead.into_iter().chain(co).map(domain::UnitId::from_uuid).collect(),
                        accused_unit: r.get::<_, Option<Uuid>>(3).map(domain::UnitId::from_uuid),
                    },
                }
            }
        };
        let plan = match decide(facts) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(append_planned(tx, case_id, &plan).await?))
    }

    /// Appends to `case_id` in one transaction that first takes the case's advisory lock (the one
    /// `append_events()` and a duplicate link take), then reads the units accused by the cases
    /// linked to it as duplicates, and lets `decide` turn them into the append. A command that
    /// hands the case to a unit (assign, transfer, an approved return, a co-unit replaced) is
    /// decided this way, so it never passes on a list a link committed meanwhile would change:
    /// the link takes the same lock, and whichever comes second sees the first (回避).
    pub async fn append_with_linked_accused<E>(
        &self,
        case_id: CaseId,
        decide: impl FnOnce(Vec<domain::UnitId>) -> Result<PlannedAppend, E>,
    ) -> Result<Result<AppendOutcome, E>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 0))", &[&case_id.as_uuid()]).await?;
        let accused: Vec<domain::UnitId> = tx
            .query(
                "SELECT DISTINCT accused_unit_id FROM ledger WHERE duplicate_of = $1 AND accused_unit_id IS NOT NULL",
                &[&case_id.as_uuid()],
            )
            .await?
            .iter()
            .map(|r| domain::UnitId::from_uuid(r.get(0)))
            .collect();
        let plan = match decide(accused) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(append_planned(tx, case_id, &plan).await?))
    }

    /// What an idempotency key was first used for: the request hash, the case and the versions
    /// it wrote. Checked before deciding, so a retry gets the first answer even when the command
    /// would no longer be allowed.
    pub async fn find_idempotency(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<([u8; 32], AppendOutcome)>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT request_hash, case_id, first_version, last_version FROM idempotency_keys WHERE scope = $1 AND key = $2")
            .await?;
        let Some(row) = client.query_opt(&stmt, &[&scope, &key]).await? else {
            return Ok(None);
        };
        let hash: Vec<u8> = row.get(0);
        let hash = <[u8; 32]>::try_from(hash).unwrap_or([0; 32]);
        let to_u32 = |v: i32| u32::try_from(v).unwrap_or(0);
        Ok(Some((
            hash,
            AppendOutcome::Duplicate {
                case_id: row.get(1),
                first_version: to_u32(row.get(2)),
                last_version: to_u32(row.get(3)),
            },
        )))
    }

    /// The case whose complainant is this subject (a scan of registrations: an operator's tool).
    pub async fn case_of_subject(&self, subject: domain::SubjectId) -> Result<Option<Uuid>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT case_id FROM events WHERE event_type = 'case.received' \
                 AND payload -> 'complainant' -> 'sealed' ->> 'subject' = $1 LIMIT 1",
                &[&subject.as_uuid().to_string()],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Up to `limit` events after `after`, in feed order. Never skips an event: only events of
    /// transactions older than every transaction still running are returned, in
    /// `(tx_id, position)` order, so nothing can later commit behind the returned cursor.
    pub async fn read_feed(&self, after: FeedCursor, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM events \
                 WHERE (tx_id, position) > ($1::bigint::text::xid8, $2) \
                   AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY events.tx_id, events.position LIMIT $3"
            ))
            .await?;
        let rows = client.query(&stmt, &[&after.tx_id, &after.position, &limit]).await?;
        rows.iter().map(StoredEvent::from_row).collect()
    }

    /// Recomputes one case's chain.
    pub async fn verify_case(&self, case_id: CaseId) -> Result<ChainCheck, StoreError> {
        let client = self.pool.get().await?;
        let stmt =
            client.prepare_cached(&format!("SELECT {COLUMNS} FROM events WHERE case_id = $1 ORDER BY version")).await?;
        let rows = client.query(&stmt, &[&case_id.as_uuid()]).await?;
        let events = rows.iter().map(StoredEvent::from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(check_chain(case_id.as_uuid(), &events))
    }
}

/// What a duplicate link must know of the other case, read under both cases' locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFacts {
    /// The target case exists.
    pub target_exists: bool,
    /// Its facts (and whether other cases point at the case being linked).
    pub target: domain::LinkTarget,
}

/// An append decided under locks: what [`EventStore::append`] takes, as one value.
#[derive(Debug, Clone)]
pub struct PlannedAppend {
    /// The version the case is at.
    pub expected_version: u32,
    /// Its head hash.
    pub prev_hash: [u8; 32],
    /// The new events.
    pub events: Vec<NewEvent>,
    /// The request's idempotency record.
    pub idempotency: Option<IdempotencyKey>,
    /// The case after the events.
    pub after: Case,
}

/// Appends a plan decided inside `tx` (under the locks it took) and commits.
async fn append_planned(
    tx: deadpool_postgres::Transaction<'_>,
    case_id: CaseId,
    plan: &PlannedAppend,
) -> Result<AppendOutcome, StoreError> {
    let p = Prepared::new(
        case_id,
        plan.expected_version,
        plan.prev_hash,
        &plan.events,
        plan.idempotency.as_ref(),
        &plan.after,
    );
    let outcome = call_append_events(&tx, &p).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// A new case (version 1 onwards), prepared to be appended beside a record's events in the
/// same transaction ([`crate::records::append_with_cases`]): opinions raised at a meeting, a
/// visit's finding, a card's call, a questionnaire's complaint.
#[derive(Clone)]
pub struct NewCaseAppend(Prepared);

impl NewCaseAppend {
    /// Prepares the registration of `case_id` with `events`, `after` being the case they fold to.
    pub fn new(case_id: CaseId, events: &[NewEvent], after: &Case) -> Self {
        Self(Prepared::new(case_id, 0, GENESIS, events, None, after))
    }

    /// As [`NewCaseAppend::new`], recording the request's idempotency key with the case.
    pub fn new_with_key(case_id: CaseId, events: &[NewEvent], after: &Case, idem: Option<IdempotencyKey>) -> Self {
        Self(Prepared::new(case_id, 0, GENESIS, events, idem.as_ref(), after))
    }

    /// The same registration, storing the complainant's subject key in its transaction (see
    /// [`EventStore::register`]).
    #[must_use]
    pub fn with_subject_key(mut self, key: Option<&SubjectKey>) -> Self {
        self.0.set_subject_key(key);
        self
    }

    /// Appends it inside the caller's transaction.
    pub(crate) async fn append(&self, client: &impl GenericClient) -> Result<AppendOutcome, StoreError> {
        call_append_events(client, &self.0).await
    }
}

/// An append with its hashes computed, ready for either path.
#[derive(Clone)]
struct Prepared {
    case_id: CaseId,
    expected: u32,
    types: Vec<&'static str>,
    schemas: Vec<i16>,
    payloads: Vec<Value>,
    metadata: Vec<Value>,
    occurred: Vec<DateTime<Utc>>,
    prev_hash: [u8; 32],
    hashes: Vec<Vec<u8>>,
    idem: Option<IdempotencyKey>,
    ledger: Value,
}

impl Prepared {
    /// Lists the complainant's subject key beside the row: `append_events()` stores it (V29).
    fn set_subject_key(&mut self, key: Option<&SubjectKey>) {
        if let (Some(k), Some(obj)) = (key, self.ledger.as_object_mut()) {
            obj.insert("subject_key".into(), k.to_json());
        }
    }

    fn new(
        case_id: CaseId,
        expected: u32,
        prev_hash: [u8; 32],
        events: &[NewEvent],
        idem: Option<&IdempotencyKey>,
        after: &Case,
    ) -> Self {
        let mut p = Self {
            case_id,
            expected,
            types: Vec::with_capacity(events.len()),
            schemas: Vec::with_capacity(events.len()),
            payloads: Vec::with_capacity(events.len()),
            metadata: Vec::with_capacity(events.len()),
            occurred: Vec::with_capacity(events.len()),
            prev_hash,
            hashes: Vec::with_capacity(events.len()),
            idem: idem.cloned(),
            // The search lexemes are written whole at registration; later, each text an event adds
            // to the history goes beside the row (`search_add`), and `append_events()` adds its
            // terms to the stored ones (V29): an append costs what its own texts cost.
            ledger: crate::ledger::LedgerRow::from_case(after, expected == 0).to_json(),
        };
        if expected > 0 {
            let added: Vec<Value> = events
                .iter()
                .flat_map(|e| e.event.texts())
                .map(|t| Value::String(crate::search::tsvector_text(t)))
                .collect();
            if !added.is_empty()
                && let Some(obj) = p.ledger.as_object_mut()
            {
                obj.insert("search_add".into(), Value::Array(added));
            }
        }
        // The units the events hand the case to: `append_events()` refuses an inactive one in the
        // same transaction (V13).
        let handed: Vec<Uuid> = events
            .iter()
            .flat_map(|e| match &e.event {
                CaseEvent::Assigned(a) => std::iter::once(a.unit).chain(a.co_units.iter().copied()).collect(),
                CaseEvent::Transferred(t) => t.to.iter().map(|to| to.unit).collect(),
                CaseEvent::Reopened(r) => r.unit.into_iter().collect(),
                CaseEvent::CoUnitReplaced(c) => c.to.into_iter().collect(),
                _ => Vec::new(),
            })
            .map(|u| u.as_uuid())
            .collect();
        if !handed.is_empty()
            && let Some(obj) = p.ledger.as_object_mut()
        {
            obj.insert("handed_to".into(), serde_json::json!(handed));
        }
        // The notices the events owe the citizen go into the outbox in the same transaction
        // (V19); a recorded delivery settles its outbox item there too.
        let decided: Vec<CaseEvent> = events.iter().map(|e| e.event.clone()).collect();
        let outbox = crate::outbox::items_owed(&decided, after);
        let settled = crate::outbox::items_settled(&decided);
        if let Some(obj) = p.ledger.as_object_mut() {
            if !outbox.is_empty() {
                obj.insert("outbox".into(), Value::Array(outbox));
            }
            if !settled.is_empty() {
                obj.insert("outbox_settled".into(), Value::Array(settled));
            }
        }
        let mut prev = prev_hash;
        for (i, e) in events.iter().enumerate() {
            let version = expected + 1 + u32::try_from(i).unwrap_or(u32::MAX);
            let payload = e.event.payload();
            let meta = serde_json::to_value(&e.metadata).unwrap_or(Value::Null);
            let at = domain::truncate_to_micros(e.occurred_at);
            let h = hash::event_hash(&HashInput {
                case_id: case_id.as_uuid(),
                version,
                event_type: e.event.event_type(),
                schema_version: e.event.schema_version(),
                occurred_at: at,
                payload: &payload,
                metadata: &meta,
                prev_hash: &prev,
            });
            p.types.push(e.event.event_type());
            p.schemas.push(i16::try_from(e.event.schema_version()).unwrap_or(i16::MAX));
            p.payloads.push(payload);
            p.metadata.push(meta);
            p.occurred.push(at);
            p.hashes.push(h.to_vec());
            prev = h;
        }
        p
    }
}

/// The chain's head after an append: the last of the hashes it sent, or `prev_hash` if none.
fn new_head(hashes: &[Vec<u8>], prev_hash: [u8; 32]) -> [u8; 32] {
    hashes.last().and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok()).unwrap_or(prev_hash)
}

/// Reads an outcome row: (outcome, case_id, first_version, last_version, first_position, last_position)
/// starting at column `at`; `hashes` are the events' hashes the append sent (the last is the new
/// head), `prev_hash` the head it started from.
pub(crate) fn outcome_of(
    row: &Row,
    at: usize,
    expected: u32,
    hashes: &[Vec<u8>],
    prev_hash: [u8; 32],
) -> Result<AppendOutcome, StoreError> {
    let outcome: String = row.get(at);
    let to_u32 = |v: i32| u32::try_from(v).unwrap_or(0);
    let (first_version, last_version) = (to_u32(row.get(at + 2)), to_u32(row.get(at + 3)));
    match outcome.as_str() {
        "appended" => Ok(AppendOutcome::Appended {
            case_id: row.get(at + 1),
            first_version,
            last_version,
            first_position: row.get(at + 4),
            last_position: row.get(at + 5),
            last_hash: new_head(hashes, prev_hash),
        }),
        "duplicate" => Ok(AppendOutcome::Duplicate { case_id: row.get(at + 1), first_version, last_version }),
        "mismatch" => Err(StoreError::IdempotencyMismatch),
        _ => Err(StoreError::Conflict { expected, actual: last_version }),
    }
}

/// Calls `append_events()` on a client or inside a transaction.
async fn call_append_events(client: &impl GenericClient, p: &Prepared) -> Result<AppendOutcome, StoreError> {
    let expected = i32::try_from(p.expected).unwrap_or(i32::MAX);
    let (scope, key, request_hash) = match &p.idem {
        Some(k) => (Some(k.scope.as_str()), Some(k.key.as_str()), Some(k.request_hash.to_vec())),
        None => (None, None, None),
    };
    let stmt = client
        .prepare_cached(
            "SELECT outcome, case_id, first_version, last_version, first_position, last_position \
             FROM append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &p.case_id.as_uuid(),
                &expected,
                &p.types,
                &p.schemas,
                &p.payloads,
                &p.metadata,
                &p.occurred,
                &p.prev_hash.as_slice(),
                &p.hashes,
                &scope,
                &key,
                &request_hash,
                &p.ledger,
            ],
        )
        .await?;
    outcome_of(&row, 0, p.expected, &p.hashes, p.prev_hash)
}

/// One append in its own transaction: one statement, one round trip.
async fn append_direct(pool: &Pool, p: &Prepared) -> Result<AppendOutcome, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let client = pool.get().await?;
        match call_append_events(&client, p).await {
            Ok(outcome) => return Ok(outcome),
            Err(e) if e.is_transient() && attempt < 3 => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A request waiting for the batcher.
struct Pending {
    req: Prepared,
    reply: tokio::sync::oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

/// The most appends one batch transaction takes.
const MAX_BATCH: usize = 32;

/// Takes appends off the queue: waits for the first, then for a free transaction permit, and
/// takes whatever queued up meanwhile into the same batch, holding the permit until the batch is
/// written (a batch of one is written with `append_events()` directly, no detour).
///
/// - An append whose caller has gone (its request timed out, its client hung up) is dropped
///   unwritten, as it would be had it never been sent.
/// - The cases of one batch are distinct (`append_batch()` requires it), and so are its
///   idempotency keys (a repeated one would fail the batch): a second append to a case, or with a
///   key, already in the batch is written on its own once the batch has committed, so it sees the
///   first, as it would one transaction after the other.
/// - A batch the server refused was rolled back whole: its appends are written one by one, so
///   the error reaches its own append only. A batch whose connection was lost may have committed:
///   each append is then looked up before it is written again ([`settle_after_lost`]).
async fn batch_writer(
    pool: Pool,
    queue: std::sync::Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Pending>>>,
    writing: std::sync::Arc<tokio::sync::Semaphore>,
) {
    loop {
        let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
        let mut after = Vec::new();
        // One critical section from the first item to the last: a writer that holds the queue
        // waits for an item, then for a permit (which a direct append or another writer's
        // batch gives back without the queue), then takes what queued up meanwhile.
        let _writing = {
            let mut rx = queue.lock().await;
            match rx.recv().await {
                Some(p) => batch.push(p),
                None => return,
            }
            let Ok(permit) = writing.acquire().await else { return };
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) if batch.iter().any(|b| b.req.case_id == p.req.case_id || same_key(b, &p)) => after.push(p),
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            permit
        };
        batch.retain(|p| !p.reply.is_closed());
        if batch.len() == 1 {
            if let Some(p) = batch.pop() {
                let r = append_direct(&pool, &p.req).await;
                let _ = p.reply.send(r);
            }
        } else if !batch.is_empty() {
            match append_many(&pool, &batch).await {
                Ok(outcomes) => {
                    for (p, o) in batch.into_iter().zip(outcomes) {
                        let _ = p.reply.send(o);
                    }
                }
                Err(e) => {
                    let lost = matches!(e, StoreError::Unavailable(_));
                    tracing::warn!(error = %e, size = batch.len(), lost, "append batch failed; appending one by one");
                    for p in batch {
                        if p.reply.is_closed() {
                            continue;
                        }
                        let r = if lost {
                            settle_after_lost(&pool, &p.req).await
                        } else {
                            append_direct(&pool, &p.req).await
                        };
                        let _ = p.reply.send(r);
                    }
                }
            }
        }
        for p in after {
            if !p.reply.is_closed() {
                let r = append_direct(&pool, &p.req).await;
                let _ = p.reply.send(r);
            }
        }
    }
}

/// Whether two appends carry the same idempotency key.
fn same_key(a: &Pending, b: &Pending) -> bool {
    match (&a.req.idem, &b.req.idem) {
        (Some(x), Some(y)) => x.scope == y.scope && x.key == y.key,
        _ => false,
    }
}

/// Answers an append whose batch lost its connection, so may have committed: when the case holds
/// exactly its events at its versions (the same hashes, which cover case, version, content and
/// the previous head), it was written, and is answered as appended; otherwise it is written now,
/// on its own.
async fn settle_after_lost(pool: &Pool, p: &Prepared) -> Result<AppendOutcome, StoreError> {
    let first = i32::try_from(p.expected).unwrap_or(i32::MAX).saturating_add(1);
    let last = first.saturating_add(i32::try_from(p.hashes.len()).unwrap_or(i32::MAX) - 1);
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT position, hash FROM events WHERE case_id = $1 AND version BETWEEN $2 AND $3 ORDER BY version",
            &[&p.case_id.as_uuid(), &first, &last],
        )
        .await?;
    drop(client);
    let stored: Vec<Vec<u8>> = rows.iter().map(|r| r.get(1)).collect();
    if !rows.is_empty() && stored == p.hashes {
        return Ok(AppendOutcome::Appended {
            case_id: p.case_id.as_uuid(),
            first_version: p.expected + 1,
            last_version: p.expected + u32::try_from(p.hashes.len()).unwrap_or(0),
            first_position: rows[0].get(0),
            last_position: rows[rows.len() - 1].get(0),
            last_hash: new_head(&p.hashes, p.prev_hash),
        });
    }
    append_direct(pool, p).await
}

/// Writes a batch of appends to distinct cases in one transaction with `append_batch()` (V37):
/// typed arrays, one element per item, the events flattened in item order. Answers each item's
/// outcome in the batch's order; `Err` when the batch as a whole failed (nothing of it is
/// written), and the caller then appends the items one by one.
async fn append_many(pool: &Pool, batch: &[Pending]) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
    let n = batch.len();
    let m: usize = batch.iter().map(|p| p.req.types.len()).sum();
    let mut cases = Vec::with_capacity(n);
    let mut expected = Vec::with_capacity(n);
    let mut prev_hashes = Vec::with_capacity(n);
    let mut counts = Vec::with_capacity(n);
    let (mut types, mut schemas, mut payloads) = (Vec::with_capacity(m), Vec::with_capacity(m), Vec::with_capacity(m));
    let (mut metadata, mut occurred, mut hashes) =
        (Vec::with_capacity(m), Vec::with_capacity(m), Vec::with_capacity(m));
    let (mut scopes, mut keys, mut request_hashes) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let mut ledgers = Vec::with_capacity(n);
    for Pending { req: p, .. } in batch {
        cases.push(p.case_id.as_uuid());
        expected.push(i32::try_from(p.expected).unwrap_or(i32::MAX));
        prev_hashes.push(p.prev_hash.as_slice());
        counts.push(i32::try_from(p.types.len()).unwrap_or(i32::MAX));
        types.extend_from_slice(&p.types);
        schemas.extend_from_slice(&p.schemas);
        payloads.extend(p.payloads.iter());
        metadata.extend(p.metadata.iter());
        occurred.extend_from_slice(&p.occurred);
        hashes.extend(p.hashes.iter().map(Vec::as_slice));
        scopes.push(p.idem.as_ref().map(|k| k.scope.as_str()));
        keys.push(p.idem.as_ref().map(|k| k.key.as_str()));
        request_hashes.push(p.idem.as_ref().map(|k| k.request_hash.as_slice()));
        ledgers.push(&p.ledger);
    }
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT idx, outcome, case_id, first_version, last_version, first_position, last_position \
             FROM append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ORDER BY idx",
        )
        .await?;
    let rows = client
        .query(
            &stmt,
            &[
                &cases,
                &expected,
                &prev_hashes,
                &counts,
                &types,
                &schemas,
                &payloads,
                &metadata,
                &occurred,
                &hashes,
                &scopes,
                &keys,
                &request_hashes,
                &ledgers,
            ],
        )
        .await?;
    if rows.len() != n {
        return Err(StoreError::Vault("append_batch answered a different number of items"));
    }
    Ok(rows.iter().zip(batch).map(|(r, p)| outcome_of(r, 1, p.req.expected, &p.req.hashes, p.req.prev_hash)).collect())
}
