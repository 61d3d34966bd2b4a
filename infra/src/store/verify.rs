//! Verifying the whole log ([`EventStore::verify_all`]), read in the table's physical order.
//!
//! Reading in `(case_id, version)` order walks the primary key and visits the heap in random
//! order, and splitting that read between two connections by case id has each scan the whole
//! table or walk its own half of the index. So the log is read as it lies on disk, each page
//! once, and the two checks a chain needs are made apart:
//! - **each event against itself:** its hash is recomputed from its content and the `prev_hash`
//!   it stores, as the rows stream in, on two connections at once (alternate chunks of the
//!   table's blocks, TID range scans), hashing on two threads;
//! - **each case's links:** a linker follows every case from genesis through the stored hashes,
//!   version after version, holding the head of each case and the events that arrive before
//!   their predecessor (few: the two scans move through the table side by side).
//!
//! Both connections read one exported snapshot, so an event appended meanwhile is seen by both
//! or by neither. Every case found wrong in any way is read again in version order in the same
//! snapshot and judged by [`check_chain`], so a failure is reported exactly as
//! [`EventStore::verify_case`] reports it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::{StreamExt, pin_mut};
use tokio::sync::mpsc;
use tokio_postgres::IsolationLevel;
use uuid::Uuid;

use tokio_postgres::Row;
use tokio_postgres::types::Json;

use super::{COLUMNS, EventStore, HASHED_COLUMNS, StoredEvent, VerifyReport, check_chain};
use crate::error::StoreError;
use crate::hash::{GENESIS, HashInput, Parsed, event_hash};

/// Events handed to the linker at once.
const LINK_BATCH: usize = 1024;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One event as the linker sees it, its hash already checked against its own content.
struct Link {
    case_id: Uuid,
    version: u32,
    prev_hash: [u8; 32],
    hash: [u8; 32],
    /// The stored hash is the one recomputed from the event's content and stored `prev_hash`.
    content_ok: bool,
}

impl Link {
    /// Reads an event from a row of the [`HASHED_COLUMNS`] select and checks its stored hash
    /// against the one recomputed from its content and stored `prev_hash`. The payload and
    /// metadata are parsed borrowing from the row ([`Parsed`]), not into owned `Value`s.
    ///
    /// # Errors
    /// [`StoreError`] when a column does not decode or a stored hash is not 32 bytes.
    fn checked(row: &Row) -> Result<Self, StoreError> {
        let bytes32 = |v: &[u8]| <[u8; 32]>::try_from(v).map_err(|_| StoreError::Vault("stored hash is not 32 bytes"));
        let case_id: Uuid = row.try_get(0)?;
        let version = u32::try_from(row.try_get::<_, i32>(1)?).unwrap_or(0);
        let Json(payload): Json<Parsed<'_>> = row.try_get(4)?;
        let Json(metadata): Json<Parsed<'_>> = row.try_get(5)?;
        let prev_hash = bytes32(row.try_get(7)?)?;
        let hash = bytes32(row.try_get(8)?)?;
        let recomputed = event_hash(&HashInput {
            case_id,
            version,
            event_type: row.try_get(2)?,
            schema_version: u16::try_from(row.try_get::<_, i16>(3)?).unwrap_or(0),
            occurred_at: row.try_get(6)?,
            payload: &payload,
            metadata: &metadata,
            prev_hash: &prev_hash,
        });
        Ok(Self { case_id, version, prev_hash, hash, content_ok: recomputed == hash })
    }
}

/// Follows every case's chain from genesis through the events' stored hashes, in whatever order
/// the events arrive.
#[derive(Default)]
struct Linker {
    /// Each case's last linked version and its hash (version 0 and [`GENESIS`] before any).
    heads: FastMap<Uuid, (u32, [u8; 32])>,
    /// Events that arrived before their predecessor: `(case, version)` → `(prev_hash, hash)`.
    waiting: FastMap<(Uuid, u32), ([u8; 32], [u8; 32])>,
    /// Cases with anything wrong: read again and judged by [`check_chain`].
    suspect: HashSet<Uuid>,
    events: u64,
}

impl Linker {
    fn add(&mut self, link: Link) {
        let Self { heads, waiting, suspect, events } = self;
        *events += 1;
        let case = link.case_id;
        if !link.content_ok {
            suspect.insert(case);
        }
        let head = heads.entry(case).or_insert((0, GENESIS));
        if link.version != head.0 + 1 {
            // Version 0, a version seen twice, or one whose predecessor has not arrived yet.
            if link.version <= head.0 || waiting.insert((case, link.version), (link.prev_hash, link.hash)).is_some() {
                suspect.insert(case);
            }
            return;
        }
        let (mut version, mut prev_hash, mut hash) = (link.version, link.prev_hash, link.hash);
        loop {
            if prev_hash != head.1 {
                suspect.insert(case);
            }
            *head = (version, hash);
            match waiting.remove(&(case, version + 1)) {
                Some((p, h)) => (version, prev_hash, hash) = (version + 1, p, h),
                None => break,
            }
        }
    }

    /// Cases seen, events seen, and the suspect cases (every case with an event still waiting
    /// for its predecessor has a gap).
    fn finish(self) -> (u64, u64, Vec<Uuid>) {
        let mut suspect = self.suspect;
        suspect.extend(self.waiting.keys().map(|(case, _)| *case));
        (self.heads.len() as u64, self.events, suspect.into_iter().collect())
    }
}

/// The transaction of a verification: one snapshot, read only, as long as it needs (the pool's
/// `statement_timeout` and idle-in-transaction timeout would end a scan of a large log).
async fn snapshot_tx<'c>(
    client: &'c mut deadpool_postgres::Object,
    import: Option<&str>,
) -> Result<deadpool_postgres::Transaction<'c>, StoreError> {
    let tx = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await?;
    if let Some(snapshot) = import {
        tx.batch_execute(&crate::db::import_snapshot_sql(snapshot)).await?;
    }
    tx.batch_execute("SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0").await?;
    Ok(tx)
}

/// Blocks per scanned chunk (8 MiB of the table at 8 KiB a block).
const CHUNK_BLOCKS: i64 = 1024;

/// How long to wait for the pool's second connection before scanning on one.
const SECOND_CONNECTION_WAIT: Duration = Duration::from_secs(1);

/// Cases read again at once to be judged.
const SUSPECTS_PER_READ: usize = 1000;

/// Streams chunks `first`, `first + step`, … of the table's `blocks` (chunks of `chunk_blocks`;
/// the last one runs to the end) in physical order, checks each event's hash against its
/// content and stored `prev_hash`, and sends the links to the linker. Two scans on alternate
/// chunks move through the table side by side, so few events arrive before their predecessor.
async fn scan_chunks(
    client: &impl tokio_postgres::GenericClient,
    (blocks, chunk_blocks): (i64, i64),
    (first, step): (i64, i64),
    linker: mpsc::Sender<Vec<Link>>,
) -> Result<(), StoreError> {
    let chunks = (blocks + chunk_blocks - 1).div_euclid(chunk_blocks).max(1);
    let mut batch = Vec::with_capacity(LINK_BATCH);
    for chunk in (first..chunks).step_by(usize::try_from(step).unwrap_or(1)) {
        let from = chunk * chunk_blocks;
        let upper =
            if chunk + 1 < chunks { format!(" AND ctid < '({},0)'::tid", from + chunk_blocks) } else { String::new() };
        let sql = format!("SELECT {HASHED_COLUMNS} FROM events WHERE ctid >= '({from},0)'::tid{upper}");
        let stream = client.query_raw(sql.as_str(), std::iter::empty::<i32>()).await?;
        pin_mut!(stream);
        while let Some(row) = stream.next().await {
            batch.push(Link::checked(&row?)?);
            if batch.len() == LINK_BATCH
                && linker.send(std::mem::replace(&mut batch, Vec::with_capacity(LINK_BATCH))).await.is_err()
            {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = linker.send(batch).await;
    }
    Ok(())
}

/// A spawned task, aborted when dropped (an error of the other scan ends this one too).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    /// Its result, its panic carried on.
    async fn join(mut self) -> T {
        (&mut self.0).await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl EventStore {
    /// Recomputes every chain in the log: every event's hash from its content, every case's
    /// versions contiguous from 1 and linked from genesis. Reads the log once in physical order,
    /// on two connections of the pool side by side (on one when a second is not free within a
    /// second), in one repeatable-read snapshot held for the whole scan (minutes at a million
    /// cases: vacuum cannot clear rows that die meanwhile), with no statement timeout. Memory
    /// holds each case's head (a hash-map entry of some 53 bytes: about 110 MB at a million cases,
    /// more while the map grows) and the events that arrive before their predecessor. Failures
    /// are in case-id order, each as [`EventStore::verify_case`] gives it.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or a stored hash is not 32 bytes.
    pub async fn verify_all(&self) -> Result<VerifyReport, StoreError> {
        self.verify_all_in_chunks(CHUNK_BLOCKS).await
    }

    /// [`EventStore::verify_all`] with chunks of `chunk_blocks` blocks (at least 1) instead of
    /// 1024: the tests scan a small table in many chunks.
    ///
    /// # Errors
    /// As [`EventStore::verify_all`].
    pub async fn verify_all_in_chunks(&self, chunk_blocks: i64) -> Result<VerifyReport, StoreError> {
        let chunk_blocks = chunk_blocks.max(1);
        let mut client = self.pool.get().await?;
        let tx = snapshot_tx(&mut client, None).await?;
        let row = tx
            .query_one(
                "SELECT pg_export_snapshot(), pg_relation_size('events') / current_setting('block_size')::bigint",
                &[],
            )
            .await?;
        let (snapshot, blocks): (String, i64) = (row.get(0), row.get(1));
        let (to_linker, mut from_scans) = mpsc::channel::<Vec<Link>>(16);
        let linker = AbortOnDrop(tokio::spawn(async move {
            let mut linker = Linker::default();
            while let Some(batch) = from_scans.recv().await {
                batch.into_iter().for_each(|link| linker.add(link));
            }
            linker
        }));
        let second = match self.pool.status().max_size {
            2.. => tokio::time::timeout(SECOND_CONNECTION_WAIT, self.pool.get()).await.ok().and_then(Result::ok),
            _ => None,
        };
        let step = if second.is_some() { 2 } else { 1 };
        let second = second.map(|mut client| {
            let to_linker = to_linker.clone();
            AbortOnDrop(tokio::spawn(async move {
                let tx = snapshot_tx(&mut client, Some(&snapshot)).await?;
                scan_chunks(&*tx, (blocks, chunk_blocks), (1, 2), to_linker).await?;
                tx.commit().await?;
                Ok::<_, StoreError>(())
            }))
        });
        let first = scan_chunks(&*tx, (blocks, chunk_blocks), (0, step), to_linker);
        tokio::try_join!(first, async {
            match second {
                Some(second) => second.join().await,
                None => Ok(()),
            }
        })?;
        let (cases, events, mut suspects) = linker.join().await.finish();
        suspects.sort_unstable();
        let mut failures = Vec::new();
        let again = format!("SELECT {COLUMNS} FROM events WHERE case_id = ANY($1) ORDER BY case_id, version");
        for ids in suspects.chunks(SUSPECTS_PER_READ) {
            let rows = tx.query(&again, &[&ids]).await?;
            let read = rows.iter().map(StoredEvent::from_row).collect::<Result<Vec<_>, _>>()?;
            for chain in read.chunk_by(|a, b| a.case_id == b.case_id) {
                let check = check_chain(chain[0].case_id, chain);
                if !check.ok() {
                    failures.push(check);
                }
            }
        }
        tx.commit().await?;
        Ok(VerifyReport { cases, events, failures })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(case: u128, version: u32, prev: u8, hash: u8) -> Link {
        let prev_hash = if prev == 0 { GENESIS } else { [prev; 32] };
        Link { case_id: Uuid::from_u128(case), version, prev_hash, hash: [hash; 32], content_ok: true }
    }

    fn run(links: Vec<Link>) -> (u64, u64, Vec<Uuid>) {
        let mut l = Linker::default();
        links.into_iter().for_each(|x| l.add(x));
        let (cases, events, mut suspects) = l.finish();
        suspects.sort();
        (cases, events, suspects)
    }

    #[test]
    fn chains_link_in_any_order_of_arrival() {
        // Case 1 in order; case 2 arrives 3, 1, 2 (its later events written to earlier blocks).
        let links =
            vec![link(1, 1, 0, 11), link(2, 3, 22, 23), link(1, 2, 11, 12), link(2, 1, 0, 21), link(2, 2, 21, 22)];
        assert_eq!(run(links), (2, 5, vec![]));
    }

    #[test]
    fn a_gap_a_broken_link_a_bad_genesis_a_repeated_version_and_bad_content_are_suspect() {
        let bad = |mut l: Link| {
            l.content_ok = false;
            l
        };
        let links = vec![
            link(1, 1, 0, 11),
            link(1, 3, 12, 13), // version 2 never comes
            link(2, 1, 0, 21),
            link(2, 2, 99, 22), // links to a hash that is not version 1's
            link(3, 1, 5, 31),  // version 1 not chained to genesis
            link(4, 1, 0, 41),
            link(4, 1, 0, 41), // version 1 twice
            link(5, 1, 0, 51),
            bad(link(5, 2, 51, 52)),
            link(6, 1, 0, 61),
            link(6, 2, 61, 62),
        ];
        let want: Vec<Uuid> = (1..=5).map(Uuid::from_u128).collect();
        assert_eq!(run(links), (6, 11, want));
    }
}
