//! # Huiyin's HTTP service and command line
//!
//! Only this crate knows HTTP. Handlers parse and authorise, then call [`service`], which
//! loads the case, asks the domain to decide, and appends through `infra`.

pub mod auth;
pub mod background;
pub mod citizen;
pub mod cli;
pub mod db_health;
pub mod delivery;
pub mod dto;
pub mod extract;
pub mod http_semantics;
pub mod instant;
pub mod keys;
pub mod metrics;
pub mod middleware;
pub mod open311;
pub mod openapi;
pub mod problem;
pub mod ratelimit;
pub mod records;
pub mod report;
pub mod routes;
pub mod seed;
pub mod service;
pub mod settings;
pub mod startup;
pub mod supervision;
pub mod telemetry;
