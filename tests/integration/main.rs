//! Huiyin's integration tests: one binary, one module per feature, real PostgreSQL, real HTTP.
#![allow(clippy::unwrap_used, missing_docs)]

mod analysis;
mod api_auth;
mod api_inputs;
mod api_lifecycle;
mod campaign;
mod citizen;
mod contention;
mod contract;
mod erasure;
mod hardening;
mod http_semantics;
mod integrity;
mod ledger;
mod logs;
mod notices;
mod open311;
mod openapi;
mod reliability;
mod report;
mod store;
mod supervision;
mod trade_lifecycle;
mod watch;
mod webhooks;
