//! Failing fast while the database does not answer.
//!
//! A stopped PostgreSQL refuses connections at once, and those requests answer 503 straight
//! away. A frozen one (a stalled disk, a paused VM, SIGSTOP) accepts and then says nothing: a
//! request on a pooled connection would wait for the whole request deadline
//! (`HUIYIN_REQUEST_TIMEOUT_MS`, 15 s) before its 503, and every request arriving meanwhile
//! would queue behind it. A probe on a connection of its own asks `SELECT 1` every
//! [`PROBE_EVERY`]; after [`FAILURES_TO_TRIP`] answers missing for [`PROBE_LIMIT`] each, with
//! no request's database work finishing meanwhile (a machine short of CPU is late to answer the
//! probe too, while requests still complete: that is load, never shed), the database counts as
//! down: requests under `/api/v1` answer 503 with `Retry-After` at once
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
    /// When a request's database work last finished: milliseconds since `started`, plus one (0:
    /// never).
    last_answer_ms: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
}

impl Default for DbHealth {
    fn default() -> Self {
        Self {
            down: tokio::sync::watch::Sender::new(false),
            last_answer_ms: std::sync::atomic::AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }
}

impl DbHealth {
    /// Records that a request's database work just finished: the database answers. The probe
    /// never counts it as down while requests are being answered (a machine short of CPU delays
    /// the probe's answer too; that is load, not a frozen database).
    pub fn answered(&self) {
        // Stored plus one: 0 means "never".
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_answer_ms.store(ms.saturating_add(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a request's database work finished within `window`.
    fn answered_within(&self, window: Duration) -> bool {
        let last = self.last_answer_ms.load(std::sync::atomic::Ordering::Relaxed);
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX).saturating_add(1);
        last > 0 && now.saturating_sub(last) <= u64::try_from(window.as_millis()).unwrap_or(u64::MAX)
    }

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
        } else if health.answered_within(PROBE_EVERY + PROBE_LIMIT) {
            // Requests are being answered: the probe is late because the machine is busy.
            failures = 0;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe's misses count only while no request is being answered: a soak on a busy
    /// machine once had 109 requests shed in one minute because the probe, short of CPU like
    /// everything else, answered late while requests were still being served.
    #[test]
    fn requests_being_answered_keep_a_late_probe_from_counting() {
        let health = DbHealth::default();
        assert!(!health.answered_within(Duration::from_secs(10)), "nothing answered yet");
        health.answered();
        assert!(health.answered_within(PROBE_EVERY + PROBE_LIMIT));
        assert!(!health.is_down());
    }
}
