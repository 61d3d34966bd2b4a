//! The campaign's records in the log: load a record's stream, append to it with its projection
//! row (`records`) in one transaction, append it together with the cases it brings, and the
//! queries its views need. The rules are [`domain::records`]'; here is only SQL.
//!
//! A record's events sit in `events` beside the cases', under the record's id, with the same
//! chain, advisory lock, version check and idempotency record (`append_record()` calls
//! `append_events()`); their type's prefix is the stream type.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use domain::RecordId;
use domain::records::{Record, RecordEvent, RecordIndex};
use serde_json::Value;
use uuid::Uuid;

use crate::db::Pool;
use crate::error::StoreError;
use crate::hash::{self, GENESIS, HashInput};
use crate::store::{AppendOutcome, COLUMNS, IdempotencyKey, Metadata, NewCaseAppend, StoredEvent};

/// A record loaded from the log.
#[derive(Debug, Clone)]
pub struct LoadedRecord<R> {
    /// The folded state; `None` when the stream is empty or of another type.
    pub record: Option<R>,
    /// Its events, in version order.
    pub events: Vec<StoredEvent>,
}

impl<R> LoadedRecord<R> {
    /// The version it is at (0 when it has no events).
    pub fn version(&self) -> u32 {
        self.events.last().map_or(0, |e| e.version)
    }
    /// The hash of its last event (the genesis hash when there is none).
    pub fn head_hash(&self) -> [u8; 32] {
        self.events.last().map_or(GENESIS, |e| e.hash)
    }
}

/// Folds a record's stored events; `None` for an empty stream or one of another type.
///
/// # Errors
/// [`StoreError::History`] when an event does not read or the history is malformed.
pub fn fold_record<R: Record>(id: RecordId, events: &[StoredEvent]) -> Result<Option<R>, StoreError> {
    if events.first().is_some_and(|e| e.stream_type() != R::STREAM) {
        return Ok(None);
    }
    domain::records::replay(
        id,
        events.iter().map(|e| (e.event_type.as_str(), e.schema_version, &e.payload, e.occurred_at)),
    )
    .map_err(|source| StoreError::History { case: id.as_uuid(), source })
}

/// Loads a record, optionally as it stood at a moment (events recorded up to it).
///
/// # Errors
/// [`StoreError`] on a database failure or a history that does not fold.
pub async fn load<R: Record>(
    pool: &Pool,
    id: RecordId,
    as_of: Option<DateTime<Utc>>,
) -> Result<LoadedRecord<R>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM events WHERE case_id = $1 AND recorded_at <= $2 ORDER BY version"
        ))
        .await?;
    let as_of = as_of.unwrap_or(DateTime::<Utc>::MAX_UTC);
    let rows = client.query(&stmt, &[&id.as_uuid(), &as_of]).await?;
    let events = rows.iter().map(StoredEvent::from_row).collect::<Result<Vec<_>, _>>()?;
    let record = fold_record::<R>(id, &events)?;
    Ok(LoadedRecord { record, events })
}

/// The projection row of a record, as `append_record()` takes it: what queries filter on, and
/// the folded state as `doc`.
pub fn projection<R: Record>(record: &R) -> Value {
    let RecordIndex { campaign, units, restricted, happened_on, serials } = record.index();
    let mut row = serde_json::json!({
        "campaign_id": campaign.map(|c| c.as_uuid()),
        "unit_ids": units.iter().map(|u| u.as_uuid()).collect::<Vec<_>>(),
        "restricted": restricted,
        "happened_on": happened_on,
        "doc": serde_json::to_value(record).unwrap_or(Value::Null),
    });
    if let (Some((from, to)), Some(obj)) = (serials, row.as_object_mut()) {
        obj.insert("serial_from".into(), from.into());
        obj.insert("serial_to".into(), to.into());
    }
    row
}

/// A record's new events with their hashes computed, and its projection after them.
#[derive(Debug, Clone)]
pub struct RecordAppend {
    stream: &'static str,
    id: RecordId,
    expected: u32,
    types: Vec<&'static str>,
    schemas: Vec<i16>,
    payloads: Vec<Value>,
    metadata: Vec<Value>,
    occurred: Vec<DateTime<Utc>>,
    prev_hash: [u8; 32],
    hashes: Vec<Vec<u8>>,
    idem: Option<IdempotencyKey>,
    row: Value,
}

impl RecordAppend {
    /// Prepares `events` for the record `id` at `expected` (head `prev_hash`), all recorded at
    /// `at` with `meta`; `after` is the record they fold to.
    #[allow(clippy::too_many_arguments)] // The fields of one append, as `append_record()` takes them.
    pub fn new<R: Record>(
        id: RecordId,
        expected: u32,
        prev_hash: [u8; 32],
        events: &[R::Event],
        at: DateTime<Utc>,
        meta: &Metadata,
        idem: Option<IdempotencyKey>,
        after: &R,
    ) -> Self {
        let at = domain::truncate_to_micros(at);
        let meta = serde_json::to_value(meta).unwrap_or(Value::Null);
        let mut a = Self {
            stream: R::STREAM,
            id,
            expected,
            types: Vec::new(),
            schemas: Vec::new(),
            payloads: Vec::new(),
            metadata: Vec::new(),
            occurred: Vec::new(),
            prev_hash,
            hashes: Vec::new(),
            idem,
            row: projection(after),
        };
        let mut prev = prev_hash;
        for (i, e) in events.iter().enumerate() {
            let version = expected + 1 + u32::try_from(i).unwrap_or(u32::MAX);
            let payload = e.payload();
            let h = hash::event_hash(&HashInput {
                case_id: id.as_uuid(),
                version,
                event_type: e.event_type(),
                schema_version: e.schema_version(),
                occurred_at: at,
                payload: &payload,
                metadata: &meta,
                prev_hash: &prev,
            });
            a.types.push(e.event_type());
            a.schemas.push(i16::try_from(e.schema_version()).unwrap_or(i16::MAX));
            a.payloads.push(payload);
            a.metadata.push(meta.clone());
            a.occurred.push(at);
            a.hashes.push(h.to_vec());
            prev = h;
        }
        a
    }

    async fn call(&self, client: &impl GenericClient) -> Result<AppendOutcome, StoreError> {
        let (scope, key, request_hash) = match &self.idem {
            Some(k) => (Some(k.scope.as_str()), Some(k.key.as_str()), Some(k.request_hash.to_vec())),
            None => (None, None, None),
        };
        let stmt = client
            .prepare_cached(
                "SELECT outcome, case_id, first_version, last_version, first_position, last_position \
                 FROM append_record($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .await?;
        let expected = i32::try_from(self.expected).unwrap_or(i32::MAX);
        let row = client
            .query_one(
                &stmt,
                &[
                    &self.stream,
                    &self.id.as_uuid(),
                    &expected,
                    &self.types,
                    &self.schemas,
                    &self.payloads,
                    &self.metadata,
                    &self.occurred,
                    &self.prev_hash.as_slice(),
                    &self.hashes,
                    &scope,
                    &key,
                    &request_hash,
                    &self.row,
                ],
            )
            .await?;
        crate::store::outcome_of(&row, 0, self.expected, &self.hashes, self.prev_hash)
    }
}

/// Appends a record's events and its projection row in one round trip.
///
/// # Errors
/// [`StoreError::Conflict`] when the record moved on, [`StoreError::IdempotencyMismatch`],
/// [`StoreError::Unique`] for a card batch overlapping another
/// (`records_serials_disjoint`), or a database failure.
pub async fn append(pool: &Pool, a: &RecordAppend) -> Result<AppendOutcome, StoreError> {
    let client = pool.get().await?;
    a.call(&client).await
}

/// Appends a record's events and the new cases they bring, all in one transaction: either every
/// case is registered and linked, or nothing is written. The record goes first (its advisory
/// lock and version check), then each case.
///
/// # Errors
/// As [`append`]; a case's failure (a receipt-code collision: [`StoreError::Unique`] with
/// `ledger_receipt_code_key`) rolls back the whole.
pub async fn append_with_cases(
    pool: &Pool,
    a: &RecordAppend,
    cases: &[NewCaseAppend],
) -> Result<AppendOutcome, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let outcome = a.call(&tx).await?;
    if !matches!(outcome, AppendOutcome::Appended { .. }) {
        // A replayed idempotency key: the first request's cases are there already.
        tx.rollback().await?;
        return Ok(outcome);
    }
    for c in cases {
        match c.append(&tx).await? {
            AppendOutcome::Appended { .. } => {}
            _ => return Err(StoreError::Vault("a new case was not appended")),
        }
    }
    tx.commit().await?;
    Ok(outcome)
}

/// Runs `f` while holding the cluster-wide advisory lock named `name`, on a connection taken
/// out of the pool (closing it releases the lock whatever happens): a rule that reads records and
/// then writes one (campaigns may not share a unit and a day) never races another instance.
///
/// # Errors
/// The lock's failure as [`StoreError`], or `f`'s own.
pub async fn exclusively<T, E: From<StoreError>>(
    pool: &Pool,
    name: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let client = deadpool_postgres::Object::take(pool.get().await.map_err(StoreError::from)?);
    client.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&name]).await.map_err(StoreError::from)?;
    let r = f.await;
    drop(client);
    r
}

/// One row of `records`.
#[derive(Debug, Clone)]
pub struct RecordRow {
    /// The record.
    pub record_id: Uuid,
    /// Its stream type.
    pub stream_type: String,
    /// Its version.
    pub version: i32,
    /// Its campaign.
    pub campaign_id: Option<Uuid>,
    /// The units it concerns.
    pub unit_ids: Vec<Uuid>,
    /// Restricted to supervisors and auditors.
    pub restricted: bool,
    /// The day it happened.
    pub happened_on: Option<NaiveDate>,
    /// The folded state.
    pub doc: Value,
}

pub(crate) const ROW: &str = "record_id, stream_type, version, campaign_id, unit_ids, restricted, happened_on, doc";

pub(crate) fn row_of(r: &tokio_postgres::Row) -> RecordRow {
    RecordRow {
        record_id: r.get(0),
        stream_type: r.get(1),
        version: r.get(2),
        campaign_id: r.get(3),
        unit_ids: r.get(4),
        restricted: r.get(5),
        happened_on: r.get(6),
        doc: r.get(7),
    }
}

/// Which records a list shows.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// The stream type.
    pub stream_type: &'static str,
    /// Only this campaign's.
    pub campaign_id: Option<Uuid>,
    /// Only records that concern this unit (a handler's scope, or a filter).
    pub unit_id: Option<Uuid>,
    /// Whether restricted records are shown (supervisors and auditors).
    pub include_restricted: bool,
    /// Keyset: after this (happened_on, record_id), newest first.
    pub after: Option<(Option<NaiveDate>, Uuid)>,
    /// At most this many.
    pub limit: i64,
}

/// Lists records, newest first by the day they happened.
///
/// # Errors
/// A database failure.
pub async fn list(pool: &Pool, f: &RecordFilter) -> Result<Vec<RecordRow>, StoreError> {
    let client = pool.get().await?;
    let (after_day, after_id) = match f.after {
        Some((d, id)) => (d, Some(id)),
        None => (None, None),
    };
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {ROW} FROM records \
             WHERE stream_type = $1 AND ($2::uuid IS NULL OR campaign_id = $2) \
               AND ($3::uuid IS NULL OR $3 = ANY(unit_ids)) AND ($4 OR NOT restricted) \
               AND ($6::uuid IS NULL OR (coalesce(happened_on, '-infinity'::date), record_id) \
                                        < (coalesce($5::date, '-infinity'::date), $6)) \
             ORDER BY coalesce(happened_on, '-infinity'::date) DESC, record_id DESC LIMIT $7"
        ))
        .await?;
    let rows = client
        .query(
            &stmt,
            &[&f.stream_type, &f.campaign_id, &f.unit_id, &f.include_restricted, &after_day, &after_id, &f.limit],
        )
        .await?;
    Ok(rows.iter().map(row_of).collect())
}

/// One record's row.
///
/// # Errors
/// A database failure.
pub async fn get(pool: &Pool, id: Uuid) -> Result<Option<RecordRow>, StoreError> {
    let client = pool.get().await?;
    let stmt = client.prepare_cached(&format!("SELECT {ROW} FROM records WHERE record_id = $1")).await?;
    Ok(client.query_opt(&stmt, &[&id]).await?.as_ref().map(row_of))
}

/// The records among `ids` that only supervisors and auditors may read (for the feed).
///
/// # Errors
/// A database failure.
pub async fn restricted_among(pool: &Pool, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
    let client = pool.get().await?;
    let stmt = client.prepare_cached("SELECT record_id FROM records WHERE record_id = ANY($1) AND restricted").await?;
    Ok(client.query(&stmt, &[&ids]).await?.iter().map(|r| r.get(0)).collect())
}

/// The card batch whose serial range holds `serial`.
///
/// # Errors
/// A database failure.
pub async fn batch_of_serial(pool: &Pool, serial: u32) -> Result<Option<Uuid>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached("SELECT record_id FROM records WHERE stream_type = 'card_batch' AND serials @> $1::bigint")
        .await?;
    Ok(client.query_opt(&stmt, &[&i64::from(serial)]).await?.map(|r| r.get(0)))
}

/// The campaigns a unit takes part in whose days hold `day` (their folded states).
///
/// # Errors
/// A database failure.
pub async fn campaigns_of(pool: &Pool, unit: Uuid, day: NaiveDate) -> Result<Vec<Value>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT doc FROM records WHERE stream_type = 'campaign' AND $1 = ANY(unit_ids) \
               AND happened_on <= $2 ORDER BY happened_on DESC, record_id",
        )
        .await?;
    Ok(client.query(&stmt, &[&unit, &day]).await?.iter().map(|r| r.get(0)).collect())
}

/// Where each of `cases` stands now: (case, status, receipt code, source item), in the order
/// given; a case with no ledger row is left out.
///
/// # Errors
/// A database failure.
pub async fn cases_status(
    pool: &Pool,
    cases: &[Uuid],
) -> Result<Vec<(Uuid, String, String, Option<String>)>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT l.case_id, l.status, l.receipt_code, l.source_item \
               FROM unnest($1::uuid[]) WITH ORDINALITY AS c(id, n) JOIN ledger l ON l.case_id = c.id ORDER BY c.n",
        )
        .await?;
    Ok(client.query(&stmt, &[&cases]).await?.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect())
}

/// A `records` row read back in the shape [`projection`] writes (for comparing with a replay).
pub(crate) const PROJECTION_JSON: &str = "jsonb_build_object('campaign_id', campaign_id, 'unit_ids', to_jsonb(unit_ids), \
     'restricted', restricted, 'happened_on', happened_on, 'doc', doc) \
     || CASE WHEN serials IS NULL THEN '{}'::jsonb \
             ELSE jsonb_build_object('serial_from', lower(serials), 'serial_to', upper(serials) - 1) END";

/// The projection row a record's events fold to, whatever its stream type; `None` for an empty
/// history or a case.
///
/// # Errors
/// [`StoreError::History`] when the history does not fold.
pub fn replay_projection(id: Uuid, events: &[StoredEvent]) -> Result<Option<Value>, StoreError> {
    use domain::records::{
        campaign::Campaign, card::CardBatch, meeting::Meeting, supervision::Supervision, survey::Survey, visit::Visit,
    };
    let rid = RecordId::from_uuid(id);
    let Some(first) = events.first() else { return Ok(None) };
    Ok(match first.stream_type() {
        "campaign" => fold_record::<Campaign>(rid, events)?.map(|r| projection(&r)),
        "meeting" => fold_record::<Meeting>(rid, events)?.map(|r| projection(&r)),
        "visit" => fold_record::<Visit>(rid, events)?.map(|r| projection(&r)),
        "card_batch" => fold_record::<CardBatch>(rid, events)?.map(|r| projection(&r)),
        "survey" => fold_record::<Survey>(rid, events)?.map(|r| projection(&r)),
        "supervision" => fold_record::<Supervision>(rid, events)?.map(|r| projection(&r)),
        _ => None,
    })
}

/// Rebuilds the `records` projection from the log (as the schema owner): in one transaction that
/// holds the table against writes (reads go on), every record stream is replayed and its row
/// written again; rows without a stream are removed. An append waiting for the lock then writes
/// its newer row over the rebuilt one. Returns how many records were rebuilt.
///
/// # Errors
/// A database failure, or a history that does not fold.
pub async fn rebuild(settings: &crate::db::DbSettings) -> Result<u64, StoreError> {
    let (mut client, conn) = settings.pg_config()?.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "connection ended");
        }
    });
    client.batch_execute("SET statement_timeout = 0").await?;
    let tx = client.transaction().await?;
    tx.batch_execute("LOCK TABLE records IN EXCLUSIVE MODE").await?;
    let streams: Vec<Uuid> = tx
        .query("SELECT DISTINCT case_id FROM events WHERE event_type NOT LIKE 'case.%'", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    tx.execute("DELETE FROM records", &[]).await?;
    let mut rebuilt = 0;
    for chunk in streams.chunks(500) {
        let mut by_stream: std::collections::HashMap<Uuid, Vec<StoredEvent>> = std::collections::HashMap::new();
        for r in &tx
            .query(
                &format!("SELECT {COLUMNS} FROM events WHERE case_id = ANY($1) ORDER BY case_id, version"),
                &[&chunk],
            )
            .await?
        {
            let e = StoredEvent::from_row(r)?;
            by_stream.entry(e.case_id).or_default().push(e);
        }
        for (id, events) in by_stream {
            let (Some(row), Some(last)) = (replay_projection(id, &events)?, events.last()) else { continue };
            let stream = last.stream_type().to_owned();
            let version = i32::try_from(last.version).unwrap_or(i32::MAX);
            tx.execute("SELECT records_put($1, $2, $3, $4)", &[&id, &stream, &version, &row]).await?;
            rebuilt += 1;
        }
    }
    tx.commit().await?;
    Ok(rebuilt)
}
