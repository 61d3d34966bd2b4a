//! The bodies of the chain check, the checkpoints and the integrator feed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::cases::EventView;

/// The result of recomputing a case's hash chain.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChainVerification {
    /// The case.
    pub case_id: Uuid,
    /// `ok` or `tampered`.
    #[schema(example = "ok")]
    pub status: String,
    /// Events checked.
    pub events: u32,
    /// The hash of the last good event, hex.
    pub head_hash: String,
    /// The first version that fails.
    pub first_bad_version: Option<u32>,
    /// What is wrong with it.
    pub problem: Option<String>,
}

/// A signed checkpoint of the whole log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckpointView {
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
    /// The export: a compact JWS (EdDSA) to keep outside the database; `huiyin verify
    /// --checkpoint FILE` checks the log against it.
    pub jws: String,
}

/// The live feed's query: where to start (a stream has no page size; it sends every event).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// A feed position to continue after (`0`, empty or absent: from the start); the
    /// `Last-Event-ID` header, when sent, wins.
    #[param(max_length = 50, pattern = r"^(0|[0-9]{1,18}\.[0-9]{1,18})?$", example = "0")]
    pub after: Option<String>,
}

/// The integrator feed's query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The `next` of the previous page (`0`, empty or absent: from the start).
    #[param(max_length = 50, pattern = r"^(0|[0-9]{1,18}\.[0-9]{1,18})?$", example = "0")]
    pub after: Option<String>,
    /// At most this many events (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// One event of the feed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedEvent {
    /// Its feed position: pass it as `after` (or `Last-Event-ID`) to continue after it.
    #[schema(example = "7581.1204")]
    pub feed_position: String,
    /// The stream the event belongs to: a case's id, or a campaign record's (see `stream_type`).
    pub case_id: Uuid,
    /// The stream's type: `case`, or a campaign record's: `campaign`, `meeting`, `visit`,
    /// `card_batch`, `survey` (the prefix of `event_type`).
    #[schema(example = "case")]
    pub stream_type: String,
    /// The event.
    #[serde(flatten)]
    pub event: EventView,
}

/// A page of the feed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedPage {
    /// Events in feed order.
    pub events: Vec<FeedEvent>,
    /// Pass as `after` for the next page (unchanged when nothing new is visible yet).
    pub next: String,
}
