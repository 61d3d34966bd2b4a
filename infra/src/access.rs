//! Credentials that are not tokens (V19): the receipt secrets citizens hold, and Open311
//! `api_key`s (their SHA-256 kept, each scoped to a channel).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::Pool;
use crate::error::StoreError;

/// The case with this receipt code and the slow hash of its secret; `None` when no case has
/// the code or its citizen holds no secret (registered by a clerk).
pub async fn receipt_secret(pool: &Pool, receipt_code: &str) -> Result<Option<(Uuid, String)>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT l.case_id, s.secret_hash FROM ledger l JOIN receipt_secrets s USING (case_id) \
              WHERE l.receipt_code = $1",
        )
        .await?;
    let row = client.query_opt(&stmt, &[&receipt_code]).await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// An Open311 api_key as an admin reads it (never the key).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiKey {
    /// Its id.
    pub id: Uuid,
    /// What it is for.
    pub name: String,
    /// The channel the cases it posts come in by.
    pub channel: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// By whom.
    pub created_by: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

fn key_of(r: &tokio_postgres::Row) -> ApiKey {
    ApiKey {
        id: r.get(0),
        name: r.get(1),
        channel: r.get(2),
        created_at: r.get(3),
        created_by: r.get(4),
        revoked_at: r.get(5),
    }
}

const KEY_COLUMNS: &str = "id, name, channel, created_at, created_by, revoked_at";

/// Stores a new key by its hash.
pub async fn create_key(
    pool: &Pool,
    key_hash: &[u8; 32],
    name: &str,
    channel: &str,
    by: &str,
) -> Result<ApiKey, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO open311_keys (id, key_hash, name, channel, created_by) VALUES ($1, $2, $3, $4, $5) \
                 RETURNING {KEY_COLUMNS}"
            ),
            &[&Uuid::new_v4(), &key_hash.as_slice(), &name, &channel, &by],
        )
        .await?;
    Ok(key_of(&row))
}

/// Every key, newest first.
pub async fn keys(pool: &Pool) -> Result<Vec<ApiKey>, StoreError> {
    let client = pool.get().await?;
    let rows =
        client.query(&format!("SELECT {KEY_COLUMNS} FROM open311_keys ORDER BY created_at DESC, id"), &[]).await?;
    Ok(rows.iter().map(key_of).collect())
}

/// Revokes a key; `false` when there is none with this id.
pub async fn revoke_key(pool: &Pool, id: Uuid) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let n = client
        .execute("UPDATE open311_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1", &[&id])
        .await?;
    Ok(n > 0)
}

/// The live key with this hash: its id and channel.
pub async fn key_by_hash(pool: &Pool, key_hash: &[u8; 32]) -> Result<Option<(Uuid, String)>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached("SELECT id, channel FROM open311_keys WHERE key_hash = $1 AND revoked_at IS NULL")
        .await?;
    let row = client.query_opt(&stmt, &[&key_hash.as_slice()]).await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}
