//! Failing fast while the database does not answer.
//!
//! A stopped PostgreSQL refuses connections at once, and those requests answer 503 straight
//! away. A frozen one (a stalled disk, a paused VM, SIGSTOP) accepts and then says nothing: a
//! request on a pooled connection would wait for the whole request deadline
//! (`HUIYIN_REQUEST_TIMEOUT_MS`, 15 s) before its 503, and every request arriving meanwhile
//! would queue behind it. A probe on a connection of its own asks `SELECT 1` every
//! [`PROBE_EVERY`]; after [`FAILURES_TO_TRIP`] answers missing for [`PROBE_LIMIT`] each, the
//! database counts as down: requests under `/api/v1` answer 503 with `Retry-After` at once
//! ([`fail_fast`]), and those already waiting are answered 503 then too
//! ([`crate::middleware::within_deadline`]: their work is dropped; an append either committed or
//! not, and a retry with the same `Idempotency-Key` tells which). The first answer
//! counts it as up again. `/healthz` (the process lives) and `/readyz` (asks the database itself)
//! are not gated.

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError};

use crate::problem::ApiError;

/// How often the probe asks.
pub const PROBE_EVERY: Duration = Duration::from_millis(1000);
/// How long one probe waits for the answer.
pub const PROBE_LIMIT: Duration = Duration::from_millis(1500);
/// How many probes in a row must go unanswered before the database counts as down.
pub const FAILURES_TO_TRIP: u32 = 2;

/// Whether the database answers, as the probe last found.
#[derive(Debug)]
pub struct DbHealth {
    down: tokio::sync::watch::Sender<bool>,
}

impl Default for DbHealth {
    fn default() -> Self {
        Self { down: tokio::sync::watch::Sender::new(false) }
    }
}

impl DbHealth {
    /// Whether the database counts as down now.
    pub fn is_down(&self) -> bool {
        *self.down.borrow()
    }

    /// Resolves once the database counts as down (at once if it does).
    pub async fn went_down(&self) {
        let mut rx = self.down.subscribe();
        let _ = rx.wait_for(|down| *down).await;
    }

    fn set(&self, down: bool) {
        self.down.send_if_modified(|d| std::mem::replace(d, down) != down);
    }
}

/// The probe's loop: runs for the life of the process, through `pool` (a pool of one
/// connection that nothing else uses).
pub async fn probe(health: Arc<DbHealth>, pool: infra::Pool) {
    let mut failures = 0u32;
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if infra::db::ping(&pool, PROBE_LIMIT).await {
            if health.is_down() {
                tracing::info!("the database answers again");
            }
            failures = 0;
            health.set(false);
        } else {
            failures = failures.saturating_add(1);
            if failures == FAILURES_TO_TRIP {
                tracing::warn!(
                    probes = failures,
                    limit_ms = PROBE_LIMIT.as_millis() as u64,
                    "the database does not answer: requests answer 503 until it does"
                );
                health.set(true);
            }
        }
    }
}

/// The middleware: under `/api/v1`, 503 at once while the database is down. (A request that
/// is already waiting when it goes down is answered by [`crate::middleware::within_deadline`],
/// which every handler's database work runs in.)
pub async fn fail_fast(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let gated = req.path().starts_with("/api/v1/") || req.path() == "/api/v1";
    let down = gated && req.app_data::<actix_web::web::Data<DbHealth>>().is_some_and(|h| h.is_down());
    if down {
        crate::metrics::metrics().requests_failed_fast.inc();
        let (http, _) = req.into_parts();
        return Ok(ServiceResponse::new(http, ApiError::Unavailable.error_response()).map_into_right_body());
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}
