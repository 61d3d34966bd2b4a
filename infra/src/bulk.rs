//! Bulk loading for `huiyin seed-demo --cases N`: events are written with COPY (as the schema
//! owner), hash-chained exactly as `append_events()` would, and each case's ledger row — the
//! replay of the rows just written, as `append_events()`'s callers fold it — goes in the same
//! transaction, so no reader (the integrity watch, the ledger) ever sees events without their
//! row. Not a path the service uses.

use chrono::{DateTime, Utc};
use domain::CaseId;
use futures_util::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};

use crate::db::DbSettings;
use crate::error::StoreError;
use crate::hash::{self, GENESIS, HashInput};
use crate::store::{NewEvent, StoredEvent, fold};

/// One case to load: its events, in order.
pub struct BulkCase {
    /// The case.
    pub id: CaseId,
    /// Its events.
    pub events: Vec<NewEvent>,
}

/// A subject key to load with the cases.
pub struct BulkKey {
    /// The subject.
    pub subject: uuid::Uuid,
    /// The wrapped data key.
    pub wrapped: Vec<u8>,
}

/// A COPY connection as the schema owner.
pub struct BulkLoader {
    client: Client,
    kek_id: String,
}

impl BulkLoader {
    /// Connects as the owner.
    pub async fn connect(owner: &DbSettings, kek_id: &str) -> Result<Self, StoreError> {
        let (client, conn) = owner.pg_config()?.connect(NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client.batch_execute("SET statement_timeout = 0; SET synchronous_commit = off").await?;
        Ok(Self { client, kek_id: kek_id.to_owned() })
    }

    /// Loads a batch of cases and their subjects' keys in one transaction. Returns the events
    /// written.
    pub async fn load(&mut self, cases: &[BulkCase], keys: &[BulkKey]) -> Result<u64, StoreError> {
        let tx = self.client.transaction().await?;
        let sink = tx
            .copy_in(
                "COPY events (case_id, version, event_type, schema_version, payload, metadata, occurred_at, recorded_at, \
                 prev_hash, hash) FROM STDIN (FORMAT binary)",
            )
            .await?;
        let writer = BinaryCopyInWriter::new(
            sink,
            &[
                Type::UUID,
                Type::INT4,
                Type::TEXT,
                Type::INT2,
                Type::JSONB,
                Type::JSONB,
                Type::TIMESTAMPTZ,
                Type::TIMESTAMPTZ,
                Type::BYTEA,
                Type::BYTEA,
            ],
        );
        pin_mut!(writer);
        let mut n = 0u64;
        let mut folded = Vec::with_capacity(cases.len());
        for case in cases {
            let mut prev = GENESIS;
            let mut stored = Vec::with_capacity(case.events.len());
            for (i, e) in case.events.iter().enumerate() {
                let version = u32::try_from(i + 1).unwrap_or(u32::MAX);
                let payload = e.event.payload();
                let metadata = serde_json::to_value(&e.metadata).unwrap_or_default();
                let at: DateTime<Utc> = domain::truncate_to_micros(e.occurred_at);
                let h = hash::event_hash(&HashInput {
                    case_id: case.id.as_uuid(),
                    version,
                    event_type: e.event.event_type(),
                    schema_version: e.event.schema_version(),
                    occurred_at: at,
                    payload: &payload,
                    metadata: &metadata,
                    prev_hash: &prev,
                });
                let v = i32::try_from(version).unwrap_or(i32::MAX);
                let s = i16::try_from(e.event.schema_version()).unwrap_or(i16::MAX);
                writer
                    .as_mut()
                    .write(&[
                        &case.id.as_uuid(),
                        &v,
                        &e.event.event_type(),
                        &s,
                        &payload,
                        &metadata,
                        &at,
                        &at,
                        &prev.as_slice(),
                        &h.as_slice(),
                    ])
                    .await?;
                stored.push(StoredEvent {
                    position: 0,
                    case_id: case.id.as_uuid(),
                    version,
                    event_type: e.event.event_type().to_owned(),
                    schema_version: e.event.schema_version(),
                    payload,
                    metadata,
                    occurred_at: at,
                    recorded_at: at,
                    tx_id: 0,
                    prev_hash: prev,
                    hash: h,
                });
                prev = h;
                n += 1;
            }
            if let Some(c) = fold(case.id, &stored)? {
                folded.push(c);
            }
        }
        writer.finish().await?;
        crate::ledger::insert_rows(&tx, "ledger", &folded, false).await?;
        if !keys.is_empty() {
            let sink =
                tx.copy_in("COPY subject_keys (subject_id, kek_id, wrapped_key) FROM STDIN (FORMAT binary)").await?;
            let writer = BinaryCopyInWriter::new(sink, &[Type::UUID, Type::TEXT, Type::BYTEA]);
            pin_mut!(writer);
            for k in keys {
                writer.as_mut().write(&[&k.subject, &self.kek_id, &k.wrapped]).await?;
            }
            writer.finish().await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Flushes (nothing buffered is left: `synchronous_commit = off` only batches the WAL flush)
    /// and vacuums the ledger, so its visibility map lets index-only scans skip the heap from
    /// the first query.
    pub async fn close(self) -> Result<(), StoreError> {
        self.client.batch_execute("VACUUM (ANALYZE) ledger").await?;
        // CHECKPOINT needs more than the owner's rights on some setups; the commit is what counts.
        let _ = self.client.batch_execute("SET synchronous_commit = on; CHECKPOINT").await;
        Ok(())
    }
}
