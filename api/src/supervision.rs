//! The supervision task (督办): runs the rules of `domain::records::supervision` over what the
//! ledger shows and raises each item once. An item's id is a UUID v5 of its trigger, and its
//! stream is created at version 0, so a trigger found again — on the next run, or by another
//! server at the same time — is refused by the log as a conflict and counted as already raised.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::records::Record;
use domain::records::supervision::{self, Raise, Rules, Supervision};
use domain::{CaseId, RecordId, Stage, UnitId};
use infra::StoreError;
use infra::records::RecordAppend;

use crate::problem::ApiError;
use crate::startup::AppState;

/// The metadata of what the rules append.
fn rules_metadata() -> infra::Metadata {
    infra::Metadata {
        actor_id: "supervision-rules".into(),
        actor_role: "system".into(),
        request_id: None,
        idempotency_key: None,
        correlation_id: None,
    }
}

/// Every item the rules ask for at `now` (raised or not).
///
/// # Errors
/// A database failure.
pub async fn wanted(state: &AppState, rules: &Rules, now: DateTime<Utc>) -> Result<Vec<Raise>, StoreError> {
    let mut out = Vec::new();
    let mut per_unit: HashMap<UnitId, HashSet<CaseId>> = HashMap::new();
    for c in infra::supervision::overdue_clocks(&state.pool, now).await? {
        let Ok(stage) = serde_json::from_value::<Stage>(serde_json::Value::String(c.stage)) else { continue };
        let case = CaseId::from_uuid(c.case_id);
        // A clock the intake answers for (routing, the acknowledgement) is the intake's, not the
        // unit's that holds the case now.
        let unit = if stage.answered_by_intake() { None } else { c.unit_id.map(UnitId::from_uuid) };
        if let Some(u) = unit {
            per_unit.entry(u).or_default().insert(case);
        }
        out.push(supervision::overdue(case, unit, stage, c.due_at).in_campaign(c.campaign_id.map(RecordId::from_uuid)));
    }
    let mut units: Vec<_> = per_unit.into_iter().collect();
    units.sort_by_key(|(u, _)| *u);
    for (unit, cases) in units {
        let n = u32::try_from(cases.len()).unwrap_or(u32::MAX);
        out.extend(supervision::unit_overdue(unit, n, rules, now));
    }
    for c in infra::supervision::disputed_cases(&state.pool).await? {
        let case = CaseId::from_uuid(c.case_id);
        let unit = c.unit_id.map(UnitId::from_uuid);
        let campaign = c.campaign_id.map(RecordId::from_uuid);
        let dissatisfied = u32::try_from(c.dissatisfied).unwrap_or(0);
        let refused = u32::try_from(c.returns_refused).unwrap_or(0);
        out.extend(supervision::repeat_dissatisfied(case, unit, dissatisfied).map(|r| r.in_campaign(campaign)));
        out.extend(supervision::return_dispute(case, unit, refused).map(|r| r.in_campaign(campaign)));
    }
    for d in infra::supervision::duplicated_cases(&state.pool, i64::from(rules.duplicates.max(1))).await? {
        let n = u32::try_from(d.duplicates).unwrap_or(u32::MAX);
        let (case, unit) = (CaseId::from_uuid(d.case_id), d.unit_id.map(UnitId::from_uuid));
        let raise = supervision::duplicates(case, unit, n, rules);
        out.extend(raise.map(|r| r.in_campaign(d.campaign_id.map(RecordId::from_uuid))));
    }
    Ok(out)
}

/// One run of the rules: raises every wanted item not raised yet; returns how many this run
/// raised.
///
/// # Errors
/// A database failure (the items raised before it stay raised).
pub async fn run_once(state: &AppState, rules: &Rules, now: DateTime<Utc>) -> Result<usize, ApiError> {
    // The log keeps microseconds: an item folded from a finer `now` would differ from the replay
    // of its own events (and the integrity watch would report every one).
    let now = domain::truncate_to_micros(now);
    let wanted = wanted(state, rules, now).await?;
    let ids: Vec<uuid::Uuid> = wanted.iter().map(|r| r.id.as_uuid()).collect();
    let existing = infra::supervision::existing(&state.pool, &ids).await?;
    let calendar = state.reference.working_calendar().await?;
    let meta = rules_metadata();
    let mut raised = 0;
    for r in wanted.iter().filter(|r| !existing.contains(&r.id.as_uuid())) {
        let events = supervision::raise(r, rules, now, &calendar)?;
        let mut item: Option<Supervision> = None;
        for e in &events {
            item = Some(Supervision::apply(item, r.id, e, now).map_err(ApiError::internal)?);
        }
        let Some(item) = item else { continue };
        let append = RecordAppend::new(r.id, 0, infra::hash::GENESIS, &events, now, &meta, None, &item);
        match infra::records::append(&state.pool, &append).await {
            Ok(_) => {
                raised += 1;
                state.appended.notify_one();
            }
            // Another server raised it first.
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(raised)
}

/// Runs the rules every `interval` until the runtime ends.
pub fn spawn(state: &AppState, rules: Rules, interval: Duration) {
    let s = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            match run_once(&s, &rules, crate::service::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(items = n, "supervision items raised"),
                Err(e) => tracing::warn!(error = %e, "the supervision rules failed; retrying"),
            }
        }
    });
}
