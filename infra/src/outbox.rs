//! The outbox of notices to citizens (V19): items are written by `append_events()` in the
//! transaction of the events that owe them ([`items_owed`]), claimed by the delivery worker
//! ([`claim`]), put back with a back-off after a transient failure ([`retry_later`]), and
//! settled in the transaction of the event that records the delivery or the final failure
//! ([`items_settled`]). Contacts are not stored here: the worker opens the subject's sealed
//! data at send time.

use chrono::{DateTime, Utc};
use domain::{Case, CaseEvent, ContactChannel, NoticeType};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::db::Pool;
use crate::error::StoreError;

/// The outbox items `events` owe, as `append_events()` reads them beside the ledger row:
/// `{id, event (1-based index in the append), notice, channel, subject}`.
pub(crate) fn items_owed(events: &[CaseEvent], after: &Case) -> Vec<Value> {
    let Some(subject) = after.complainant.sealed.as_ref().map(|s| s.subject) else {
        return Vec::new();
    };
    domain::notice::owed(events, after)
        .into_iter()
        .map(|o| {
            json!({
                "id": Uuid::new_v4(),
                "event": o.event + 1,
                "notice": o.notice.as_str(),
                "channel": o.channel.as_str(),
                "subject": subject.as_uuid(),
            })
        })
        .collect()
}

/// The outbox items whose delivery (or final failure) `events` record: `{id, state}`.
pub(crate) fn items_settled(events: &[CaseEvent]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match e {
            CaseEvent::NoticeDelivered(d) => Some(json!({"id": d.outbox_id, "state": "delivered"})),
            CaseEvent::NoticeFailed(f) => Some(json!({"id": f.outbox_id, "state": "failed"})),
            _ => None,
        })
        .collect()
}

/// An outbox item claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// Its id: the idempotency key of the sending (the mail's `Message-ID`, the SMS `OutId`).
    pub id: Uuid,
    /// The case.
    pub case_id: Uuid,
    /// The version of the event that owes it.
    pub version: u32,
    /// What about.
    pub notice: NoticeType,
    /// How.
    pub channel: ContactChannel,
    /// Whose sealed data holds the contact.
    pub subject: Uuid,
    /// Attempts made, this one included.
    pub attempts: u32,
}

/// Claims up to `limit` due items of `channels` for `lease_s` seconds (counting this attempt).
/// Items another worker holds are skipped; a crashed worker's claim lapses after its lease.
pub async fn claim(
    pool: &Pool,
    channels: &[ContactChannel],
    limit: i64,
    lease_s: i64,
) -> Result<Vec<OutboxItem>, StoreError> {
    let channels: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "UPDATE outbox o SET attempts = o.attempts + 1, locked_until = now() + $2 * interval '1 second' \
              WHERE o.id IN (SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= now() \
                               AND (locked_until IS NULL OR locked_until < now()) AND channel = ANY($3) \
                             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING o.id, o.case_id, o.version, o.notice, o.channel, o.subject, o.attempts",
        )
        .await?;
    let rows = client.query(&stmt, &[&limit, &(lease_s as f64), &channels]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let notice: String = r.get(3);
            let channel: String = r.get(4);
            Some(OutboxItem {
                id: r.get(0),
                case_id: r.get(1),
                version: u32::try_from(r.get::<_, i32>(2)).ok()?,
                notice: NoticeType::parse(&notice)?,
                channel: match channel.as_str() {
                    "sms" => ContactChannel::Sms,
                    "email" => ContactChannel::Email,
                    _ => return None,
                },
                subject: r.get(5),
                attempts: u32::try_from(r.get::<_, i32>(6)).unwrap_or(0),
            })
        })
        .collect())
}

/// Puts a claimed item back after a transient failure, due again in `after_s` seconds.
/// `error` is what the sender said (never a personal value).
pub async fn retry_later(pool: &Pool, id: Uuid, after_s: i64, error: &str) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE outbox SET next_attempt_at = now() + $2 * interval '1 second', locked_until = NULL, last_error = $3 \
              WHERE id = $1 AND state = 'pending'",
            &[&id, &(after_s as f64), &error],
        )
        .await?;
    Ok(())
}

/// Whether an item is still pending (a worker that lost its lease checks before it sends).
pub async fn is_pending(pool: &Pool, id: Uuid) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let row = client.query_opt("SELECT state = 'pending' FROM outbox WHERE id = $1", &[&id]).await?;
    Ok(row.is_some_and(|r| r.get(0)))
}

/// An outbox item as an admin reads it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboxRow {
    /// Its id.
    pub id: Uuid,
    /// The case.
    pub case_id: Uuid,
    /// What about.
    pub notice: String,
    /// How.
    pub channel: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts made.
    pub attempts: i32,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When it is next tried, while pending.
    pub next_attempt_at: DateTime<Utc>,
    /// What the sender last said.
    pub last_error: Option<String>,
    /// When it was delivered or given up.
    pub settled_at: Option<DateTime<Utc>>,
}

/// The outbox items of a case, oldest first.
pub async fn of_case(pool: &Pool, case_id: Uuid) -> Result<Vec<OutboxRow>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, case_id, notice, channel, state, attempts, created_at, next_attempt_at, last_error, settled_at \
               FROM outbox WHERE case_id = $1 ORDER BY created_at, id",
            &[&case_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| OutboxRow {
            id: r.get(0),
            case_id: r.get(1),
            notice: r.get(2),
            channel: r.get(3),
            state: r.get(4),
            attempts: r.get(5),
            created_at: r.get(6),
            next_attempt_at: r.get(7),
            last_error: r.get(8),
            settled_at: r.get(9),
        })
        .collect())
}

/// A notice template.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Template {
    /// What about.
    pub notice: String,
    /// Which channel.
    pub channel: String,
    /// The mail's subject (text messages ignore it).
    pub subject: String,
    /// The text.
    pub body: String,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// By whom (absent: the shipped text).
    pub updated_by: Option<String>,
}

fn template_of(r: &tokio_postgres::Row) -> Template {
    Template {
        notice: r.get(0),
        channel: r.get(1),
        subject: r.get(2),
        body: r.get(3),
        updated_at: r.get(4),
        updated_by: r.get(5),
    }
}

/// Every template, by notice and channel.
pub async fn templates(pool: &Pool) -> Result<Vec<Template>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT notice, channel, subject, body, updated_at, updated_by FROM notice_templates ORDER BY notice, channel",
            &[],
        )
        .await?;
    Ok(rows.iter().map(template_of).collect())
}

/// The template of a notice on a channel.
pub async fn template(
    pool: &Pool,
    notice: NoticeType,
    channel: ContactChannel,
) -> Result<Option<Template>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT notice, channel, subject, body, updated_at, updated_by FROM notice_templates \
              WHERE notice = $1 AND channel = $2",
            &[&notice.as_str(), &channel.as_str()],
        )
        .await?;
    Ok(row.as_ref().map(template_of))
}

/// Replaces a template's subject and body (checked by the caller).
pub async fn put_template(
    pool: &Pool,
    notice: NoticeType,
    channel: ContactChannel,
    subject: &str,
    body: &str,
    by: &str,
) -> Result<Option<Template>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "UPDATE notice_templates SET subject = $3, body = $4, updated_at = now(), updated_by = $5 \
              WHERE notice = $1 AND channel = $2 \
             RETURNING notice, channel, subject, body, updated_at, updated_by",
            &[&notice.as_str(), &channel.as_str(), &subject, &body, &by],
        )
        .await?;
    Ok(row.as_ref().map(template_of))
}
