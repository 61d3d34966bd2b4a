//! Huiyin's integration tests: one binary, one module per feature, real PostgreSQL.
#![allow(clippy::unwrap_used, missing_docs)]

mod store;
