//! Integrators' webhook endpoints (V19): each follows the gap-free feed from its own cursor.
//! The delivery worker holds an endpoint's session advisory lock while it delivers, so one
//! endpoint is served by one worker at a time across replicas, and advances the cursor after
//! every event the receiver acknowledged: a restart resumes after the last acknowledged event
//! (a receiver that acknowledged an event whose acknowledgement was lost in a crash sees it
//! again, with the same feed position, and dedupes by it).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::Pool;
use crate::error::StoreError;
use crate::store::FeedCursor;

/// A registered endpoint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Endpoint {
    /// Its id.
    pub id: Uuid,
    /// Where deliveries go.
    pub url: String,
    /// The event-type prefixes delivered; empty: every event.
    pub event_types: Vec<String>,
    /// Whether it receives deliveries.
    pub active: bool,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// By whom.
    pub created_by: String,
    /// The feed position of the last event delivered or skipped.
    pub cursor: String,
    /// Events delivered.
    pub delivered: i64,
    /// Failed attempts since the last success.
    pub consecutive_failures: i32,
    /// When the next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
    /// The receiver's last HTTP status.
    pub last_status: Option<i32>,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was disabled, if it was.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why it was disabled, if it was.
    pub disabled_reason: Option<String>,
}

const COLUMNS: &str = "e.id, e.url, e.event_types, e.active, e.created_at, e.created_by, e.cursor_tx, e.cursor_position, \
     e.delivered, e.consecutive_failures, e.next_attempt_at, e.last_status, e.last_error, e.disabled_at, \
     (SELECT d.reason FROM webhook_disablements d WHERE d.endpoint_id = e.id ORDER BY d.at DESC LIMIT 1)";

fn endpoint_of(r: &tokio_postgres::Row) -> Endpoint {
    Endpoint {
        id: r.get(0),
        url: r.get(1),
        event_types: r.get(2),
        active: r.get(3),
        created_at: r.get(4),
        created_by: r.get(5),
        cursor: FeedCursor { tx_id: r.get(6), position: r.get(7) }.to_string(),
        delivered: r.get(8),
        consecutive_failures: r.get(9),
        next_attempt_at: r.get(10),
        last_status: r.get(11),
        last_error: r.get(12),
        disabled_at: r.get(13),
        disabled_reason: r.get(14),
    }
}

/// The feed's head: the position of the newest event every reader can see (new endpoints start
/// there, so they receive what happens from now on).
pub async fn feed_head(pool: &Pool) -> Result<FeedCursor, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT tx_id::text::bigint, position FROM events \
              WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY events.tx_id DESC, events.position DESC LIMIT 1",
            &[],
        )
        .await?;
    Ok(row.map_or(FeedCursor::START, |r| FeedCursor { tx_id: r.get(0), position: r.get(1) }))
}

/// Registers an endpoint that starts after `from`.
pub async fn create(
    pool: &Pool,
    url: &str,
    secret: &str,
    event_types: &[String],
    from: FeedCursor,
    by: &str,
) -> Result<Endpoint, StoreError> {
    let client = pool.get().await?;
    let id = Uuid::new_v4();
    client
        .execute(
            "INSERT INTO webhook_endpoints (id, url, secret, event_types, created_by, cursor_tx, cursor_position) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&id, &url, &secret, &event_types, &by, &from.tx_id, &from.position],
        )
        .await?;
    get(pool, id).await?.ok_or(StoreError::Vault("the endpoint just registered is gone"))
}

/// One endpoint.
pub async fn get(pool: &Pool, id: Uuid) -> Result<Option<Endpoint>, StoreError> {
    let client = pool.get().await?;
    let row = client.query_opt(&format!("SELECT {COLUMNS} FROM webhook_endpoints e WHERE e.id = $1"), &[&id]).await?;
    Ok(row.as_ref().map(endpoint_of))
}

/// Every endpoint, newest first.
pub async fn list(pool: &Pool) -> Result<Vec<Endpoint>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(&format!("SELECT {COLUMNS} FROM webhook_endpoints e ORDER BY e.created_at DESC, e.id"), &[])
        .await?;
    Ok(rows.iter().map(endpoint_of).collect())
}

/// Enables an endpoint again (its failures forgotten, due at once; it resumes at its cursor)
/// or disables it, recording who and why.
pub async fn set_active(pool: &Pool, id: Uuid, active: bool, by: &str, reason: &str) -> Result<bool, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "UPDATE webhook_endpoints SET active = $2, consecutive_failures = 0, next_attempt_at = now(), \
                    disabled_at = CASE WHEN $2 THEN NULL ELSE now() END \
              WHERE id = $1 RETURNING cursor_tx, cursor_position",
            &[&id, &active],
        )
        .await?;
    let Some(row) = row else { return Ok(false) };
    if !active {
        let cursor = FeedCursor { tx_id: row.get(0), position: row.get(1) }.to_string();
        tx.execute(
            "INSERT INTO webhook_disablements (endpoint_id, by, reason, cursor) VALUES ($1, $2, $3, $4)",
            &[&id, &by, &reason, &cursor],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// What the delivery worker needs of an endpoint.
#[derive(Debug, Clone)]
pub struct Due {
    /// Its id.
    pub id: Uuid,
    /// Where to.
    pub url: String,
    /// The signing secret.
    pub secret: String,
    /// The prefixes delivered.
    pub event_types: Vec<String>,
    /// Where it resumes.
    pub cursor: FeedCursor,
    /// Failures since the last success.
    pub consecutive_failures: i32,
}

/// The active endpoints due for an attempt.
pub async fn due(pool: &Pool) -> Result<Vec<Due>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, url, secret, event_types, cursor_tx, cursor_position, consecutive_failures \
               FROM webhook_endpoints WHERE active AND next_attempt_at <= now() ORDER BY next_attempt_at",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Due {
            id: r.get(0),
            url: r.get(1),
            secret: r.get(2),
            event_types: r.get(3),
            cursor: FeedCursor { tx_id: r.get(4), position: r.get(5) },
            consecutive_failures: r.get(6),
        })
        .collect())
}

/// A connection holding an endpoint's delivery lock (a session advisory lock, released when
/// dropped back into the pool by [`Lease::release`]).
pub struct Lease {
    client: deadpool_postgres::Object,
    id: Uuid,
}

/// Takes an endpoint's delivery lock if no other worker holds it.
pub async fn try_lease(pool: &Pool, id: Uuid) -> Result<Option<Lease>, StoreError> {
    let client = pool.get().await?;
    let got: bool = client
        .query_one("SELECT pg_try_advisory_lock(hashtextextended('webhook:' || $1::uuid::text, 0))", &[&id])
        .await?
        .get(0);
    Ok(got.then_some(Lease { client, id }))
}

impl Lease {
    /// The endpoint's cursor as stored now (another worker may have moved it before this one
    /// took the lock).
    pub async fn cursor(&self) -> Result<Option<(FeedCursor, bool)>, StoreError> {
        let row = self
            .client
            .query_opt("SELECT cursor_tx, cursor_position, active FROM webhook_endpoints WHERE id = $1", &[&self.id])
            .await?;
        Ok(row.map(|r| (FeedCursor { tx_id: r.get(0), position: r.get(1) }, r.get(2))))
    }

    /// Records events delivered (`delivered` of them; the rest were filtered out) up to `to`.
    pub async fn advance(&self, to: FeedCursor, delivered: i64, status: Option<i32>) -> Result<(), StoreError> {
        self.client
            .execute(
                "UPDATE webhook_endpoints SET cursor_tx = $2, cursor_position = $3, delivered = delivered + $4, \
                        consecutive_failures = CASE WHEN $4 > 0 THEN 0 ELSE consecutive_failures END, \
                        last_status = coalesce($5, last_status), last_error = CASE WHEN $4 > 0 THEN NULL ELSE last_error END \
                  WHERE id = $1",
                &[&self.id, &to.tx_id, &to.position, &delivered, &status],
            )
            .await?;
        Ok(())
    }

    /// Records a failed attempt: due again in `retry_in_s`; at `disable_after` consecutive
    /// failures the endpoint is disabled, with a record. Returns whether it was disabled.
    pub async fn failed(
        &self,
        status: Option<i32>,
        error: &str,
        retry_in_s: i64,
        disable_after: i32,
    ) -> Result<bool, StoreError> {
        let row = self
            .client
            .query_one(
                "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1, last_status = $2, \
                        last_error = $3, next_attempt_at = now() + $4 * interval '1 second' \
                  WHERE id = $1 RETURNING consecutive_failures",
                &[&self.id, &status, &error, &(retry_in_s as f64)],
            )
            .await?;
        let failures: i32 = row.get(0);
        if failures >= disable_after {
            let reason = format!("disabled after {failures} consecutive failed deliveries; last: {error}");
            let by = "huiyin:webhook-worker";
            self.client
                .execute(
                    "WITH d AS (UPDATE webhook_endpoints SET active = false, disabled_at = now() WHERE id = $1 \
                                RETURNING cursor_tx, cursor_position) \
                     INSERT INTO webhook_disablements (endpoint_id, by, reason, cursor) \
                     SELECT $1, $2, $3, d.cursor_tx::text || '.' || d.cursor_position::text FROM d",
                    &[&self.id, &by, &reason],
                )
                .await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Releases the lock.
    pub async fn release(self) -> Result<(), StoreError> {
        self.client
            .execute("SELECT pg_advisory_unlock(hashtextextended('webhook:' || $1::uuid::text, 0))", &[&self.id])
            .await?;
        Ok(())
    }
}
