//! The whole-log hash and signed checkpoints (see `migrations/V4__integrity.sql` and
//! `docs/integrity.md`).

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::Pool;
use crate::error::StoreError;
use crate::hash::GENESIS;
use crate::store::{EventStore, FeedCursor};

/// The domain-separation tag of the log hash.
pub const LOG_TAG: &[u8] = b"huiyin.log.v1";

/// `SHA-256("huiyin.log.v1" ‖ prev ‖ event_hash)`.
pub fn fold_log_hash(prev: &[u8; 32], event_hash: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(LOG_TAG);
    h.update(prev);
    h.update(event_hash);
    h.finalize().into()
}

/// Where a fold of the feed stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogState {
    /// The last event folded.
    pub cursor: FeedCursor,
    /// How many events were folded.
    pub count: i64,
    /// The running hash.
    pub hash: [u8; 32],
}

impl LogState {
    /// The empty log.
    pub const START: Self = Self { cursor: FeedCursor::START, count: 0, hash: GENESIS };
}

/// Folds the feed after `from` into the log hash, up to and including `until` (or to the end of
/// what is visible).
pub async fn fold_feed(store: &EventStore, from: LogState, until: Option<FeedCursor>) -> Result<LogState, StoreError> {
    let mut state = from;
    loop {
        let page = store.read_feed(state.cursor, 5000).await?;
        if page.is_empty() {
            return Ok(state);
        }
        for e in &page {
            let c = FeedCursor::after(e);
            if until.is_some_and(|u| c > u) {
                return Ok(state);
            }
            state = LogState { cursor: c, count: state.count + 1, hash: fold_log_hash(&state.hash, &e.hash) };
        }
    }
}

/// The signed content of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointClaims {
    /// Always `huiyin`.
    pub iss: String,
    /// Always `huiyin.checkpoint`.
    pub sub: String,
    /// The feed position of the last event covered (`<tx_id>.<position>`).
    pub cursor: String,
    /// How many events the log held up to it.
    pub event_count: i64,
    /// The log hash, hex.
    pub log_hash: String,
    /// When it was made (seconds since the epoch).
    pub iat: i64,
}

/// A stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// Its id.
    pub id: i64,
    /// The feed position it covers up to.
    pub cursor: String,
    /// Events covered.
    pub event_count: i64,
    /// The log hash, hex.
    pub log_hash: String,
    /// When made.
    pub created_at: DateTime<Utc>,
    /// The signing key's id.
    pub key_id: String,
    /// The signed export (compact JWS, EdDSA): keep it outside the database.
    pub jws: String,
}

impl Checkpoint {
    fn from_row(r: &tokio_postgres::Row) -> Self {
        let cursor = FeedCursor { tx_id: r.get(1), position: r.get(2) };
        Self {
            id: r.get(0),
            cursor: cursor.to_string(),
            event_count: r.get(3),
            log_hash: hex::encode(r.get::<_, Vec<u8>>(4)),
            created_at: r.get(5),
            key_id: r.get(6),
            jws: r.get(7),
        }
    }

    /// The log state it records.
    pub fn state(&self) -> Option<LogState> {
        let hash: [u8; 32] = hex::decode(&self.log_hash).ok()?.try_into().ok()?;
        Some(LogState { cursor: self.cursor.parse().ok()?, count: self.event_count, hash })
    }
}

const COLS: &str = "id, feed_tx_id, feed_position, event_count, log_hash, created_at, key_id, jws";

/// The newest checkpoint.
pub async fn latest(pool: &Pool) -> Result<Option<Checkpoint>, StoreError> {
    let client = pool.get().await?;
    let stmt = client.prepare_cached(&format!("SELECT {COLS} FROM checkpoints ORDER BY id DESC LIMIT 1")).await?;
    Ok(client.query_opt(&stmt, &[]).await?.as_ref().map(Checkpoint::from_row))
}

/// When the newest checkpoint was signed or, while there is none, when the first event of the
/// log was recorded (the log has gone unvouched since); `None` for an empty log with no
/// checkpoint. For the `checkpoint_age_seconds` metric.
pub async fn vouched_since(pool: &Pool) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT coalesce((SELECT created_at FROM checkpoints ORDER BY id DESC LIMIT 1), \
                             (SELECT recorded_at FROM events ORDER BY position LIMIT 1))",
        )
        .await?;
    Ok(client.query_one(&stmt, &[]).await?.get(0))
}

/// Checkpoints, newest first, before `before_id`.
pub async fn list(pool: &Pool, before_id: Option<i64>, limit: i64) -> Result<Vec<Checkpoint>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(&format!("SELECT {COLS} FROM checkpoints WHERE id < $1 ORDER BY id DESC LIMIT $2"))
        .await?;
    Ok(client.query(&stmt, &[&before_id.unwrap_or(i64::MAX), &limit]).await?.iter().map(Checkpoint::from_row).collect())
}

/// Signs checkpoints with an Ed25519 key.
pub struct Signer {
    key: EncodingKey,
    key_id: String,
}

impl Signer {
    /// A signer from a PKCS#8 PEM private key.
    pub fn from_pem(pem: &[u8], key_id: impl Into<String>) -> Result<Self, String> {
        Ok(Self { key: EncodingKey::from_ed_pem(pem).map_err(|e| e.to_string())?, key_id: key_id.into() })
    }
}

/// Checks a checkpoint's signature with an Ed25519 public key and returns what it signed.
pub fn verify_signature(jws: &str, public_pem: &[u8]) -> Result<CheckpointClaims, String> {
    let key = DecodingKey::from_ed_pem(public_pem).map_err(|e| e.to_string())?;
    let mut v = Validation::new(Algorithm::EdDSA);
    v.algorithms = vec![Algorithm::EdDSA];
    v.required_spec_claims = std::collections::HashSet::new();
    v.validate_exp = false;
    v.validate_aud = false;
    v.set_issuer(&["huiyin"]);
    jsonwebtoken::decode::<CheckpointClaims>(jws, &key, &v).map(|d| d.claims).map_err(|e| e.to_string())
}

/// Reads the claims of a checkpoint without checking its signature (to locate it in the log).
pub fn claims_unverified(jws: &str) -> Result<CheckpointClaims, String> {
    use base64::Engine;
    let payload = jws.split('.').nth(1).ok_or("not a compact JWS")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// The checkpoints' advisory lock: one instance writes them at a time.
const CHECKPOINT_LOCK: i64 = 0x4855_4943_4b50;

/// Folds the feed from the latest checkpoint up to `until` (the whole visible feed without it) and
/// records a new one when events were added. Returns it, or `None` when nothing changed or another
/// instance holds the lock. The service passes the integrity watch's cursor as `until`, so a
/// checkpoint never vouches for events no check has covered.
pub async fn make_checkpoint(
    store: &EventStore,
    signer: &Signer,
    until: Option<FeedCursor>,
) -> Result<Option<Checkpoint>, StoreError> {
    let client = store.pool().get().await?;
    let locked: bool = client.query_one("SELECT pg_try_advisory_lock($1)", &[&CHECKPOINT_LOCK]).await?.get(0);
    if !locked {
        return Ok(None);
    }
    let result = async {
        let from = latest(store.pool()).await?.and_then(|c| c.state()).unwrap_or(LogState::START);
        if until.is_some_and(|u| (u.tx_id, u.position) <= (from.cursor.tx_id, from.cursor.position)) {
            return Ok(None);
        }
        let to = fold_feed(store, from, until).await?;
        if to.count == from.count {
            return Ok(None);
        }
        let claims = CheckpointClaims {
            iss: "huiyin".into(),
            sub: "huiyin.checkpoint".into(),
            cursor: to.cursor.to_string(),
            event_count: to.count,
            log_hash: hex::encode(to.hash),
            iat: Utc::now().timestamp(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(signer.key_id.clone());
        let jws = jsonwebtoken::encode(&header, &claims, &signer.key)
            .map_err(|_| StoreError::Vault("signing the checkpoint"))?;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO checkpoints (feed_tx_id, feed_position, event_count, log_hash, key_id, jws) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLS}"
                ),
                &[&to.cursor.tx_id, &to.cursor.position, &to.count, &to.hash.as_slice(), &signer.key_id, &jws],
            )
            .await?;
        Ok(Some(Checkpoint::from_row(&row)))
    }
    .await;
    let _ = client.query_one("SELECT pg_advisory_unlock($1)", &[&CHECKPOINT_LOCK]).await;
    result
}

/// The result of checking the log against a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogCheck {
    /// Events the checkpoint covers.
    pub expected_count: i64,
    /// Events found up to its position.
    pub actual_count: i64,
    /// The checkpoint's log hash.
    pub expected_hash: String,
    /// The recomputed log hash.
    pub actual_hash: String,
}

impl LogCheck {
    /// Whether the log matches.
    pub fn ok(&self) -> bool {
        self.expected_count == self.actual_count && self.expected_hash == self.actual_hash
    }
}

/// Recomputes the log hash up to a checkpoint's position and compares.
pub async fn check_log(store: &EventStore, claims: &CheckpointClaims) -> Result<LogCheck, StoreError> {
    let until: FeedCursor = claims.cursor.parse().map_err(|_| StoreError::Vault("bad checkpoint cursor"))?;
    let state = fold_feed(store, LogState::START, Some(until)).await?;
    Ok(LogCheck {
        expected_count: claims.event_count,
        actual_count: state.count,
        expected_hash: claims.log_hash.clone(),
        actual_hash: hex::encode(state.hash),
    })
}
