//! Personal data (name, phone, ID number) sealed with a per-subject key.
//!
//! Each complainant gets a random 256-bit data key. Their personal data is encrypted with it
//! (XChaCha20-Poly1305, the subject id as associated data) and only that ciphertext enters the
//! event log, where the hash chain covers it. The data key is stored in `subject_keys`, wrapped
//! by the key-encryption key (KEK) from configuration. Erasure shreds the wrapped key: the
//! ciphertext in the log becomes unreadable everywhere, and the log never has to change.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use domain::{SealedPersonalData, SubjectId};
use serde::{Deserialize, Serialize};

use crate::db::Pool;
use crate::error::StoreError;
use crate::secret::Secret;

/// A complainant's personal data in clear. Never logged: `Debug` is redacted.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalData {
    /// Full name.
    pub name: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Resident identity card number.
    pub id_number: Option<String>,
    /// Email address (absent in data sealed before notices were sent by mail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl std::fmt::Debug for PersonalData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonalData([redacted])")
    }
}

/// What opening sealed data gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The data in clear.
    Clear(PersonalData),
    /// The subject's key was shredded: the data is gone for good.
    Erased,
}

/// Seals and opens personal data.
#[derive(Clone)]
pub struct Vault {
    kek: Secret<[u8; 32]>,
    kek_id: String,
    /// Earlier key-encryption keys by id, to open what they wrapped (rotation).
    retired: std::collections::HashMap<String, Secret<[u8; 32]>>,
}

const NONCE_LEN: usize = 24;

impl Vault {
    /// A vault with a key-encryption key and its id (recorded with every wrapped key).
    pub fn new(kek: [u8; 32], kek_id: impl Into<String>) -> Self {
        Self { kek: Secret::new(kek), kek_id: kek_id.into(), retired: std::collections::HashMap::new() }
    }

    /// Adds an earlier key-encryption key, so data wrapped under it still opens after rotation.
    pub fn with_retired(mut self, kek_id: impl Into<String>, kek: [u8; 32]) -> Self {
        self.retired.insert(kek_id.into(), Secret::new(kek));
        self
    }

    fn kek_for(&self, kek_id: &str) -> Result<&[u8; 32], StoreError> {
        if kek_id == self.kek_id {
            return Ok(self.kek.expose());
        }
        self.retired
            .get(kek_id)
            .map(Secret::expose)
            .ok_or(StoreError::Vault("the key that wrapped this subject's key is not configured"))
    }

    fn seal_bytes(key: &[u8; 32], aad: &[u8], msg: &[u8]) -> Result<Vec<u8>, StoreError> {
        let cipher = XChaCha20Poly1305::new(key.into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = cipher.encrypt(&nonce, Payload { msg, aad }).map_err(|_| StoreError::Vault("encryption failed"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn open_bytes(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        if sealed.len() < NONCE_LEN {
            return Err(StoreError::Vault("sealed data is too short"));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new(key.into());
        cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| StoreError::Vault("decryption failed"))
    }

    /// Seals data under a new subject key without storing the key: returns the sealed data and
    /// the wrapped key, for bulk loads that write `subject_keys` themselves.
    pub fn seal_detached(&self, data: &PersonalData) -> Result<(SealedPersonalData, Vec<u8>), StoreError> {
        let subject = SubjectId::from_uuid(uuid::Uuid::new_v4());
        let dek: [u8; 32] = XChaCha20Poly1305::generate_key(&mut OsRng).into();
        let wrapped = Self::seal_bytes(self.kek.expose(), subject.as_uuid().as_bytes(), &dek)?;
        let clear = serde_json::to_vec(data).map_err(|_| StoreError::Vault("serialising personal data"))?;
        let ciphertext = Self::seal_bytes(&dek, subject.as_uuid().as_bytes(), &clear)?;
        Ok((SealedPersonalData { subject, ciphertext: B64.encode(ciphertext) }, wrapped))
    }

    /// Seals data under a new subject key that the registration's append stores in its own
    /// transaction ([`SubjectKey`], V29): one round trip and one commit for a registration, and
    /// a retried one (the same idempotency key) leaves no key behind.
    ///
    /// # Errors
    /// [`StoreError::Vault`] when the data cannot be serialised or sealed.
    pub fn seal_for_append(&self, data: &PersonalData) -> Result<(SealedPersonalData, SubjectKey), StoreError> {
        let (sealed, wrapped_key) = self.seal_detached(data)?;
        let key = SubjectKey { subject_id: sealed.subject.as_uuid(), kek_id: self.kek_id.clone(), wrapped_key };
        Ok((sealed, key))
    }

    /// The id of the key-encryption key.
    pub fn kek_id(&self) -> &str {
        &self.kek_id
    }

    /// Creates a key for a new subject and seals their data with it.
    pub async fn seal(&self, pool: &Pool, data: &PersonalData) -> Result<SealedPersonalData, StoreError> {
        let (sealed, wrapped) = self.seal_detached(data)?;
        let subject = sealed.subject;
        let client = pool.get().await?;
        let stmt = client
            .prepare_cached("INSERT INTO subject_keys (subject_id, kek_id, wrapped_key) VALUES ($1, $2, $3)")
            .await?;
        client.execute(&stmt, &[&subject.as_uuid(), &self.kek_id, &wrapped]).await?;
        Ok(sealed)
    }

    /// Opens sealed data, or says it was erased.
    pub async fn open(&self, pool: &Pool, sealed: &SealedPersonalData) -> Result<Opened, StoreError> {
        let client = pool.get().await?;
        let stmt = client.prepare_cached("SELECT wrapped_key, kek_id FROM subject_keys WHERE subject_id = $1").await?;
        let row = client.query_opt(&stmt, &[&sealed.subject.as_uuid()]).await?;
        let Some((wrapped, kek_id)) =
            row.and_then(|r| r.get::<_, Option<Vec<u8>>>(0).map(|w| (w, r.get::<_, String>(1))))
        else {
            return Ok(Opened::Erased);
        };
        let aad = sealed.subject.as_uuid();
        let dek: [u8; 32] = Self::open_bytes(self.kek_for(&kek_id)?, aad.as_bytes(), &wrapped)?
            .try_into()
            .map_err(|_| StoreError::Vault("wrapped key has the wrong length"))?;
        let ct = B64.decode(&sealed.ciphertext).map_err(|_| StoreError::Vault("ciphertext is not base64"))?;
        let clear = Self::open_bytes(&dek, aad.as_bytes(), &ct)?;
        serde_json::from_slice(&clear).map(Opened::Clear).map_err(|_| StoreError::Vault("personal data does not parse"))
    }

    /// Shreds a subject's key. Returns whether a key was shredded now.
    pub async fn erase(&self, pool: &Pool, subject: SubjectId) -> Result<bool, StoreError> {
        let client = pool.get().await?;
        let stmt = client
            .prepare_cached("UPDATE subject_keys SET wrapped_key = NULL, erased_at = now() WHERE subject_id = $1 AND wrapped_key IS NOT NULL")
            .await?;
        Ok(client.execute(&stmt, &[&subject.as_uuid()]).await? == 1)
    }
}

/// A new subject's wrapped data key, to be stored by the append that registers its case
/// (`subject_keys`, written by `append_events()` from V29).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectKey {
    /// The subject.
    pub subject_id: uuid::Uuid,
    /// The key-encryption key it is wrapped under.
    pub kek_id: String,
    /// The data key, wrapped (nonce and ciphertext).
    pub wrapped_key: Vec<u8>,
}

impl SubjectKey {
    /// The key as `append_events()` reads it beside the ledger row.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "subject_id": self.subject_id,
            "kek_id": self.kek_id,
            "wrapped_key": hex::encode(&self.wrapped_key),
        })
    }
}

/// What [`compact_erased_keys`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Compaction {
    /// The partitions rewritten with no dead row version left in them: every shredded key in
    /// them is gone from the table's storage.
    pub rewritten: Vec<String>,
    /// The partitions where a dead row version survived the rewrite because a transaction older
    /// than the erasure still runs (an open repeatable-read transaction, a `pg_dump`, a long
    /// export), whose dead version a rewrite would have to copy; or that could not be locked
    /// at once. They are not recorded as done and are tried again on the next call.
    pub held: Vec<String>,
}

/// Rewrites every key partition that still holds the old row version of a shredded key, once
/// no running snapshot may read that version: a plain `VACUUM` first, whose count of dead row
/// versions it could not remove (`pg_stat_all_tables.n_dead_tup`) must be 0, then
/// `VACUUM (FULL, SKIP_LOCKED)` of that partition (a new file with only the live rows; the
/// old file is unlinked), which must have run (a new relfilenode) for the partition to be
/// recorded as done. Needs the owner's connection (`owner`) and the default
/// `track_counts = on` (without it nothing is recorded as done).
///
/// What this does not reach: the WAL segments written before (kept until the next checkpoint
/// recycles them, longer with `wal_keep_size` or WAL archiving) and backups (kept as long as
/// their retention): see ARCHITECTURE.md.
pub async fn compact_erased_keys(owner: &crate::DbSettings) -> Result<Compaction, StoreError> {
    let cfg = owner.pg_config()?;
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    // The rewrite needs the partition's ACCESS EXCLUSIVE lock. Waiting for it behind a long
    // reader (a `pg_dump` holds its locks for the whole dump) would queue every registration
    // and reveal behind the wait: it takes the lock only when free (SKIP_LOCKED), and a
    // partition it cannot lock is held for the next try. The plain VACUUM's lock conflicts only
    // with other vacuums: it waits a second at most.
    client.batch_execute("SET statement_timeout = 0; SET lock_timeout = '1s'").await?;
    let counted = client.query_one("SELECT current_setting('track_counts')::bool", &[]).await?.get::<_, bool>(0);
    let stale = client
        .query(
            "SELECT s.tableoid::regclass::text FROM subject_keys s \
             LEFT JOIN subject_key_compactions c ON c.partition = s.tableoid::regclass::text \
             WHERE s.erased_at IS NOT NULL AND (c.compacted_at IS NULL OR s.erased_at >= c.compacted_at) \
             GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await?;
    let mut report = Compaction::default();
    for row in stale {
        let partition: String = row.get(0);
        // Only partition names this migration created reach the statements below.
        if !partition.strip_prefix("subject_keys_p").is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        let started: chrono::DateTime<chrono::Utc> = client.query_one("SELECT clock_timestamp()", &[]).await?.get(0);
        // First a plain VACUUM (its lock blocks no reader or writer), which counts the dead
        // versions it cannot remove because a running snapshot may still read them (each
        // statement here is its own transaction, so the statistics read are fresh). Checked
        // before the rewrite, not after: a dead version pruned after the rewrite would leave its
        // bytes in the page's free space, where pageinspect reads them.
        match client.batch_execute(&format!("VACUUM {partition}")).await {
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                report.held.push(partition);
                continue;
            }
            other => other?,
        }
        let dead: i64 = client
            .query_one("SELECT n_dead_tup FROM pg_stat_all_tables WHERE relid = $1::text::regclass", &[&partition])
            .await?
            .get(0);
        if !counted || dead > 0 {
            report.held.push(partition);
            continue;
        }
        // No snapshot reads the old versions any more (and none taken from now on will), so the
        // rewrite copies none. SKIP_LOCKED: when a reader holds the partition, it is skipped
        // rather than waited for, so no registration queues behind the rewrite; a new file
        // (a new relfilenode) shows it ran.
        let filenode = "SELECT pg_relation_filenode($1::text::regclass)::bigint";
        let before: Option<i64> = client.query_one(filenode, &[&partition]).await?.get(0);
        client.batch_execute(&format!("VACUUM (FULL, SKIP_LOCKED) {partition}")).await?;
        let after: Option<i64> = client.query_one(filenode, &[&partition]).await?.get(0);
        if after == before {
            report.held.push(partition);
            continue;
        }
        client
            .execute(
                "INSERT INTO subject_key_compactions (partition, compacted_at) VALUES ($1, $2) \
                 ON CONFLICT (partition) DO UPDATE SET compacted_at = EXCLUDED.compacted_at",
                &[&partition, &started],
            )
            .await?;
        report.rewritten.push(partition);
    }
    drop(client);
    let _ = task.await;
    Ok(report)
}
