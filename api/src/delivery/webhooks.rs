//! The webhook worker: each active endpoint follows the gap-free feed from its cursor and gets
//! every event whose type starts with one of its prefixes, one POST per event, in feed order.
//! A 2xx moves the cursor past the event; anything else retries the same event with a back-off
//! (base doubled, at most an hour), and `HUIYIN_WEBHOOK_DISABLE_AFTER` failures in a row
//! disable the endpoint with a record. An undercover visit's events are not sent while it is
//! undisclosed (as the feed hides them from integrators), and the complainant's sealed data is
//! removed from payloads.
//!
//! A delivery is `POST <url>` with the event as the feed serves it (`FeedEvent`) and:
//! - `Huiyin-Feed-Position`: the event's feed position (consumers dedupe by it);
//! - `Huiyin-Event-Type`: its type;
//! - `Huiyin-Endpoint`: the endpoint's id;
//! - `Huiyin-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` — verify
//!   it with the secret shown when the endpoint was registered, and refuse old timestamps.

use std::collections::HashSet;
use std::time::Duration;

use hmac::{Hmac, Mac};
use infra::FeedCursor;
use infra::webhooks::{Due, Lease};
use sha2::Sha256;
use uuid::Uuid;

use crate::dto::FeedEvent;
use crate::problem::ApiError;
use crate::settings::PublicArgs;
use crate::startup::AppState;

/// Events read from the feed per round.
const PAGE: i64 = 100;

/// The `Huiyin-Signature` value of a body sent at `t`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("any key length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether an event type is delivered to an endpoint with these prefixes.
pub fn wanted(prefixes: &[String], event_type: &str) -> bool {
    prefixes.is_empty() || prefixes.iter().any(|p| event_type.starts_with(p.as_str()))
}

/// Runs the worker until the runtime stops: every endpoint due, on every wake-up of the feed
/// and at least every second.
pub async fn run(state: AppState, settings: PublicArgs) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.webhook_timeout_ms.max(100)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the webhook client could not be built; webhooks are off");
            return;
        }
    };
    loop {
        if let Err(e) = run_once(&state, &client, &settings).await {
            tracing::warn!(error = %crate::problem::error_chain(&e), "the webhook worker failed; retrying");
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = state.feed_wake.notified() => {}
        }
    }
}

/// Serves every endpoint due once.
pub async fn run_once(state: &AppState, client: &reqwest::Client, settings: &PublicArgs) -> Result<(), ApiError> {
    for endpoint in infra::webhooks::due(&state.pool).await? {
        let Some(lease) = infra::webhooks::try_lease(&state.pool, endpoint.id).await? else { continue };
        let served = serve(state, client, settings, &endpoint, &lease).await;
        lease.release().await?;
        served?;
    }
    Ok(())
}

/// Delivers what the endpoint has not seen, until it is caught up or a delivery fails.
async fn serve(
    state: &AppState,
    client: &reqwest::Client,
    settings: &PublicArgs,
    endpoint: &Due,
    lease: &Lease,
) -> Result<(), ApiError> {
    // The cursor as stored now: another worker may have moved it before this one got the lock.
    let Some((mut cursor, true)) = lease.cursor().await? else { return Ok(()) };
    loop {
        let events = state.store.read_feed(cursor, PAGE).await?;
        if events.is_empty() {
            return Ok(());
        }
        let records: Vec<Uuid> = events.iter().filter(|e| !e.is_case_event()).map(|e| e.case_id).collect();
        let restricted: HashSet<Uuid> = if records.is_empty() {
            HashSet::new()
        } else {
            infra::records::restricted_among(&state.pool, &records).await?.into_iter().collect()
        };
        let full = events.len() as i64 == PAGE;
        let mut skipped_to: Option<FeedCursor> = None;
        for e in &events {
            let at = FeedCursor::after(e);
            if restricted.contains(&e.case_id) || !wanted(&endpoint.event_types, &e.event_type) {
                skipped_to = Some(at);
                continue;
            }
            if let Some(to) = skipped_to.take() {
                lease.advance(to, 0, None).await?;
            }
            let mut view = crate::service::event_view(e);
            if let Some(obj) = view.payload.as_object_mut() {
                obj.remove("complainant");
            }
            let body = serde_json::to_vec(&FeedEvent {
                feed_position: at.to_string(),
                case_id: e.case_id,
                stream_type: e.stream_type().to_owned(),
                event: view,
            })
            .map_err(ApiError::internal)?;
            let t = chrono::Utc::now().timestamp();
            let sent = client
                .post(&endpoint.url)
                .header("content-type", "application/json")
                .header("huiyin-feed-position", at.to_string())
                .header("huiyin-event-type", e.event_type.as_str())
                .header("huiyin-endpoint", endpoint.id.to_string())
                .header("huiyin-signature", signature(&endpoint.secret, t, &body))
                .body(body)
                .send()
                .await;
            let (status, error) = match sent {
                Ok(r) if r.status().is_success() => {
                    lease.advance(at, 1, Some(i32::from(r.status().as_u16()))).await?;
                    continue;
                }
                Ok(r) => {
                    (Some(i32::from(r.status().as_u16())), format!("the receiver answered {}", r.status().as_u16()))
                }
                Err(err) if err.is_timeout() => (None, "the receiver did not answer in time".to_owned()),
                Err(_) => (None, "the receiver could not be reached".to_owned()),
            };
            let failures = u32::try_from(endpoint.consecutive_failures).unwrap_or(0) + 1;
            let wait = super::backoff_s(settings.webhook_retry_base_s, failures);
            let limit = i32::try_from(settings.webhook_disable_after.max(1)).unwrap_or(i32::MAX);
            if lease.failed(status, &error, wait, limit).await? {
                tracing::warn!(webhook.id = %endpoint.id, "a webhook endpoint was disabled after repeated failures");
            }
            return Ok(());
        }
        let last = events.last().map(FeedCursor::after).unwrap_or(cursor);
        if let Some(to) = skipped_to {
            lease.advance(to, 0, None).await?;
        }
        cursor = last;
        if !full {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{signature, wanted};

    /// `printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec`
    #[test]
    fn signature_matches_openssl() {
        assert_eq!(signature("whsec", 1_700_000_000, b"{}"), format!("t=1700000000,v1={EXPECTED}"));
    }
    const EXPECTED: &str = "7d44587dddbaf4c7f70fef20f48cd594834ffea1641e3ac227b84408298738af";

    #[test]
    fn prefixes_filter_event_types() {
        assert!(wanted(&[], "case.received"));
        assert!(wanted(&["case.".into()], "case.fed_back"));
        assert!(!wanted(&["case.fed_back".into()], "case.received"));
    }
}
