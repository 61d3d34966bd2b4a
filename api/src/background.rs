//! Background tasks of the service: the feed's wake-ups (LISTEN/NOTIFY), signed checkpoints,
//! the compaction of the analysis rollups, the supervision rules and the freezing of finished
//! campaigns' summary reports.
//!
//! NOTIFY is only a hint: notifications are lost when the listening connection drops, so event
//! streams also poll every second. Appends do not NOTIFY inside their transaction (that would
//! serialise every commit on the notification queue's lock); instead this process wakes its own
//! streams at once and sends one NOTIFY at most every 50 ms for the other instances.

use std::time::Duration;

use crate::settings::ServeArgs;
use crate::startup::AppState;

/// Starts the tasks; they end with the runtime.
pub fn spawn(state: &AppState, settings: &ServeArgs) {
    let s = state.clone();
    tokio::spawn(async move {
        loop {
            s.appended.notified().await;
            s.feed_wake.notify_waiters();
            let _ = infra::notify::notify(&s.pool).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let wake = state.feed_wake.clone();
    let db = settings.db.app();
    tokio::spawn(async move {
        loop {
            if let Err(e) = infra::notify::listen(&db, &wake).await {
                tracing::warn!(error = %e, "feed listener lost its connection; retrying in 1 s");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    // Deactivated units, as other instances may change them: tokens naming one are refused.
    let s = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        loop {
            tick.tick().await;
            if let Err(e) = s.reference.unit_tree().await {
                tracing::warn!(error = %e, "reading the units failed; retrying");
            }
            if let Err(e) = crate::service::return_cases_of_inactive_units(&s).await {
                tracing::warn!(error = %e, "returning the cases of deactivated units failed; retrying");
            }
        }
    });
    // A calendar loaded or corrected by any instance (or by `huiyin seed-demo`) recomputes the
    // open deadlines it changes, each by an explicit event: at once when this instance took the
    // `PUT /calendar` (which answers without waiting: thousands of open cases take seconds),
    // within 30 s when another did.
    let s = state.clone();
    tokio::spawn(async move {
        let mut seen: Option<Vec<(i32, chrono::DateTime<chrono::Utc>)>> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = s.calendar_changed.notified() => {}
            }
            let Ok(version) = s.reference.calendar_version().await else { continue };
            if seen.as_ref() == Some(&version) {
                continue;
            }
            // The years loaded or changed since the last look (every flagged case, at start).
            let years: Vec<i32> = match &seen {
                None => Vec::new(),
                Some(before) => version.iter().filter(|v| !before.contains(v)).map(|(y, _)| *y).collect(),
            };
            match crate::service::recompute_calendar_deadlines(&s, &years).await {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(cases = n, "deadlines recomputed on the calendar loaded");
                    }
                    seen = Some(version);
                }
                Err(e) => tracing::warn!(error = %e, "recomputing deadlines failed; retrying"),
            }
        }
    });
    // The analysis rollups (V25) take in the changes logged since the last look, and the
    // overdue view's totals (V38) the deadline crossings that have passed.
    let s = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            if let Err(e) = s.analysis.compact_rollups().await {
                tracing::warn!(error = %e, "compacting the analysis rollups failed; retrying");
            }
            if let Err(e) = s.ledger.compact_deadline_crossings().await {
                tracing::warn!(error = %e, "compacting the deadline crossings failed; retrying");
            }
        }
    });
    // The integrity watch: every event that becomes visible is checked (chain and ledger row),
    // through a connection of its own, so busy streams and exports never delay it.
    let s = state.clone();
    let mut watch_db = settings.db.app();
    watch_db.pool_size = 1;
    watch_db.application_name = "huiyin-watch".into();
    match watch_db.pool() {
        Ok(watch_pool) => {
            tokio::spawn(async move { run_watch(&s, &watch_pool).await });
        }
        Err(e) => tracing::error!(error = %e, "the integrity watch cannot start"),
    }
    // Erasures reach the storage: the key partitions holding a shredded key's old row version
    // are rewritten, with the owner's connection when the service has one (else `huiyin shred`).
    if settings.db.admin_url.is_some() {
        let owner = settings.db.admin();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                match infra::vault::compact_erased_keys(&owner).await {
                    Ok(done) => {
                        if !done.rewritten.is_empty() {
                            tracing::info!(partitions = done.rewritten.len(), "shredded keys compacted");
                        }
                        if !done.held.is_empty() {
                            tracing::warn!(
                                partitions = done.held.len(),
                                "a transaction older than an erasure still runs: its key partition keeps the old row version until the next try"
                            );
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "compacting shredded keys failed; retrying"),
                }
            }
        });
    }
    // Supervision raised by rules (督办), and the summary reports of campaigns whose summary
    // phase has ended frozen (a request for one freezes it too, if it comes first).
    if settings.supervision.rules_interval_s > 0 {
        let every = Duration::from_secs(settings.supervision.rules_interval_s);
        crate::supervision::spawn(state, settings.supervision.rules(), every);
        let s = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match crate::report::freeze_finished(&s, crate::service::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(campaigns = n, "summary reports frozen"),
                    Err(e) => tracing::warn!(error = %e, "freezing the finished campaigns' reports failed; retrying"),
                }
            }
        });
    }
    if let (Some(signer), interval) = (state.signer.clone(), settings.checkpoints.interval_s) {
        if interval == 0 {
            return;
        }
        let s = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(interval));
            tick.tick().await;
            loop {
                tick.tick().await;
                match crate::service::checkpoint(&s, &signer).await {
                    Ok(Some(c)) => {
                        tracing::info!(checkpoint.id = c.id, checkpoint.events = c.event_count, "checkpoint signed")
                    }
                    Ok(None) => {}
                    Err(e @ crate::problem::ApiError::IntegrityAlarm { .. }) => {
                        tracing::error!(error = %e, "no checkpoint signed")
                    }
                    Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
                }
            }
        });
    }
}

/// Reports what one pass of the integrity watch found: an ERROR line per failure, and the
/// metrics.
pub fn report_watch(found: &[infra::watch::WatchFailure], events_checked: u64) {
    let m = crate::metrics::metrics();
    m.integrity_alarms.inc_by(found.len() as u64);
    m.integrity_events_checked.inc_by(events_checked);
    for f in found {
        tracing::error!(case.id = %f.case_id, problem = %f.problem, "INTEGRITY ALARM");
    }
}

/// How often the integrity watch looks for new events once it has caught up.
const WATCH_TICK: Duration = Duration::from_secs(2);

/// The integrity watch's loop: from the latest checkpoint's position at start (see `infra::watch::start`), every visible event is checked
/// once; a pass that finds a full page runs the next at once, so a backlog is worked off
/// without waiting for the tick.
async fn run_watch(s: &AppState, pool: &infra::Pool) {
    loop {
        match infra::watch::start(pool).await {
            Ok(start) => {
                s.watch.lock().await.cursor = start;
                break;
            }
            Err(e) => tracing::warn!(error = %e, "the integrity watch cannot find where to start; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let mut tick = tokio::time::interval(WATCH_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            let mut status = s.watch.lock().await;
            let before = status.events_checked;
            match infra::watch::run_once(pool, &mut status, 2000).await {
                Ok((found, caught_up)) => {
                    report_watch(&found, status.events_checked - before);
                    if caught_up {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the integrity watch could not run; retrying");
                    break;
                }
            }
        }
    }
}
