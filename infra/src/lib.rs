//! # Huiyin's storage: PostgreSQL, and nothing else knows SQL
//!
//! - [`db`]: the connection pool, with timeouts, and the server-side statement limits.
//! - [`migrate`]: the plain SQL files under `migrations/`, applied by refinery.
//! - [`store`]: the append-only event store (optimistic concurrency, idempotency, hash chain,
//!   the gap-free feed, verification).
//! - [`hash`]: the canonical bytes of an event and its chained SHA-256 (the published recipe).
//! - [`vault`]: personal data sealed with per-subject keys kept outside the log.
//! - [`watch`]: verification that runs continuously behind the feed, with an alarm.
//! - [`ledger`] and [`search`]: the ledger projection and the terms it is searched by.
//! - [`records`]: the campaign's records (meetings, visits, cards, questionnaires) as streams
//!   beside the cases, with their projection.
//! - [`reference`]: units (with their hierarchy, for recusal), categories, the working calendar.

pub mod access;
pub mod analysis;
pub mod bulk;
pub mod db;
pub mod error;
pub mod hash;
pub mod integrity;
pub mod ledger;
pub mod migrate;
pub mod notify;
pub mod open311;
pub mod outbox;
pub mod records;
pub mod reference;
pub mod replay;
pub mod report;
pub mod search;
pub mod secret;
pub mod store;
pub mod supervision;
pub mod vault;
pub mod watch;
pub mod webhooks;

pub use db::{DbSettings, Pool};
pub use error::StoreError;
pub use secret::Secret;
pub use store::{
    AppendOutcome, EventStore, FeedCursor, IdempotencyKey, LinkFacts, LoadedCase, Metadata, NewEvent, PlannedAppend,
    StoredEvent,
};
