//! The ledger as the Open311 facade reads it: the cases an api_key posted (their registration's
//! actor is `open311:<key id>`), with what a service request shows (the registration's
//! description and location, the latest reply, the last change).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::Pool;
use crate::error::StoreError;

/// What `GET requests` asks for. `receipt_codes` overrides every other filter but the channel
/// (as the spec's `service_request_id` does).
#[derive(Debug, Clone)]
pub struct RequestFilter {
    /// The key's channel.
    pub channel: String,
    /// The actor the key's requests were registered as (`open311:<key id>`): a key reads only
    /// what it posted, never other cases of its channel (a citizen's online report, a hotline's).
    pub posted_by: String,
    /// Received at or after.
    pub from: DateTime<Utc>,
    /// Received before.
    pub to: DateTime<Utc>,
    /// Only these categories, if any.
    pub categories: Option<Vec<Uuid>>,
    /// Only these ledger statuses, if any.
    pub statuses: Option<Vec<String>>,
    /// Only these receipt codes (overriding the others).
    pub receipt_codes: Option<Vec<String>>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// A case as a service request.
#[derive(Debug, Clone)]
pub struct RequestRow {
    /// The case.
    pub case_id: Uuid,
    /// Its receipt code.
    pub receipt_code: String,
    /// The ledger's status.
    pub status: String,
    /// Its category.
    pub category_id: Option<Uuid>,
    /// Its unit.
    pub unit_id: Option<Uuid>,
    /// When received.
    pub received_at: DateTime<Utc>,
    /// The overall limit, while the case runs.
    pub overall_due_at: Option<DateTime<Utc>>,
    /// The registration's description.
    pub description: Option<String>,
    /// The registration's location (JSON, as the event holds it).
    pub location: Option<serde_json::Value>,
    /// The time of the last event.
    pub updated_at: DateTime<Utc>,
    /// The latest reply.
    pub reply: Option<String>,
    /// Whether the citizen withdrew it.
    pub withdrawn: bool,
}

/// The cases of a channel that match, newest first.
pub async fn requests(pool: &Pool, f: &RequestFilter) -> Result<Vec<RequestRow>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT l.case_id, l.receipt_code, l.status, l.category_id, l.unit_id, l.received_at, l.overall_due_at, \
                    r.payload->>'description', r.payload->'location', \
                    (SELECT max(e.occurred_at) FROM events e WHERE e.case_id = l.case_id), \
                    (SELECT f.payload->>'content' FROM events f WHERE f.case_id = l.case_id \
                        AND f.event_type = 'case.fed_back' ORDER BY f.version DESC LIMIT 1), \
                    EXISTS (SELECT 1 FROM events w WHERE w.case_id = l.case_id AND w.event_type = 'case.withdrawn') \
               FROM ledger l JOIN events r ON r.case_id = l.case_id AND r.version = 1 \
              WHERE l.channel = $1 AND r.metadata->>'actor_id' = $8 \
                AND (CASE WHEN $6::text[] IS NOT NULL THEN l.receipt_code = ANY($6) \
                     ELSE l.received_at >= $2 AND l.received_at < $3 \
                          AND ($4::uuid[] IS NULL OR l.category_id = ANY($4)) \
                          AND ($5::text[] IS NULL OR l.status = ANY($5)) END) \
              ORDER BY l.received_at DESC, l.case_id LIMIT $7",
        )
        .await?;
    let rows = client
        .query(
            &stmt,
            &[&f.channel, &f.from, &f.to, &f.categories, &f.statuses, &f.receipt_codes, &f.limit, &f.posted_by],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| RequestRow {
            case_id: r.get(0),
            receipt_code: r.get(1),
            status: r.get(2),
            category_id: r.get(3),
            unit_id: r.get(4),
            received_at: r.get(5),
            overall_due_at: r.get(6),
            description: r.get(7),
            location: r.get(8),
            updated_at: r.get::<_, Option<DateTime<Utc>>>(9).unwrap_or_else(|| r.get(5)),
            reply: r.get(10),
            withdrawn: r.get(11),
        })
        .collect())
}
