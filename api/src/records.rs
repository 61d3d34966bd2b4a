//! The application service of the campaign's records (campaigns, meetings, visits, contact-card
//! batches, questionnaires), shared by their routes: load a record in the caller's scope, decide
//! a command against it, append with optimistic concurrency (retried, or 412 under `If-Match`),
//! and the parts of a view every record has. Each resource's own rules are in
//! `domain::records::*`; its routes, bodies and views in `routes/<resource>.rs`.

use chrono::{DateTime, Utc};
use domain::RecordId;
use domain::records::{Record, RecordIndex};
use infra::records::{LoadedRecord, RecordAppend};
use infra::store::NewCaseAppend;
use infra::{AppendOutcome, StoreError};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Action, Principal, Scope};
use crate::problem::ApiError;
use crate::service::{IfMatch, RequestMeta, now};
use crate::startup::AppState;

/// How often a record command is re-decided when another writer got in first (no `If-Match`).
const MAX_ATTEMPTS: usize = 20;

/// Whether the caller may read a record: restricted ones (an undercover visit not yet
/// disclosed) only supervisors and auditors; a handler only those that concern their unit.
pub fn readable(principal: &Principal, scope: Scope, index: &RecordIndex) -> bool {
    if index.restricted && principal.require(Action::ReadRestrictedRecords).is_err() {
        return false;
    }
    match scope {
        Scope::All => true,
        Scope::OwnUnit => principal.unit.is_some_and(|u| index.units.contains(&u)),
    }
}

/// Loads a record the caller may read, optionally as it stood at a moment; 404 when it is
/// missing, of another type, or out of the caller's reach (indistinguishable on purpose).
pub async fn load<R: Record>(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    as_of: Option<DateTime<Utc>>,
) -> Result<(R, LoadedRecord<R>), ApiError> {
    let scope = principal.require(Action::ReadRecords)?;
    let loaded = infra::records::load::<R>(&state.pool, RecordId::from_uuid(id), as_of).await?;
    // Whether the record may be read is decided on its state now: an undercover visit read as
    // of a moment before its disclosure is readable once it is disclosed, never before.
    let now_index = if as_of.is_some() {
        infra::records::load::<R>(&state.pool, RecordId::from_uuid(id), None).await?.record.map(|r| r.index())
    } else {
        loaded.record.as_ref().map(Record::index)
    };
    match (&loaded.record, now_index) {
        (Some(r), Some(index)) if readable(principal, scope, &index) => Ok((r.clone(), loaded)),
        _ => Err(ApiError::NotFound(R::STREAM)),
    }
}

/// What a decision against a record produced: its events, and the new cases it brings (all
/// appended in one transaction).
pub struct Decided<R: Record> {
    /// The record's new events.
    pub events: Vec<R::Event>,
    /// New cases registered with them.
    pub cases: Vec<NewCaseAppend>,
}

impl<R: Record> Decided<R> {
    /// Events only.
    pub fn events(events: Vec<R::Event>) -> Self {
        Self { events, cases: Vec::new() }
    }
}

/// Creates a record: `events` start its stream.
///
/// # Errors
/// As [`write`].
pub async fn create<R: Record>(
    state: &AppState,
    meta: &RequestMeta,
    action: Action,
    body: &impl Serialize,
    decided: Decided<R>,
) -> Result<R, ApiError> {
    meta.principal.require(action)?;
    let idem = meta.idempotency(R::STREAM, None, body);
    if let Some(k) = &idem
        && let Some((hash, AppendOutcome::Duplicate { case_id, .. })) =
            state.store.find_idempotency(&k.scope, &k.key).await?
    {
        if hash != k.request_hash {
            return Err(ApiError::IdempotencyMismatch);
        }
        return Ok(load::<R>(state, &meta.principal, case_id, None).await?.0);
    }
    let id = RecordId::from_uuid(Uuid::new_v4());
    let at = now();
    let after = fold_new::<R>(None, id, &decided.events, at)?;
    let append = RecordAppend::new(id, 0, infra::hash::GENESIS, &decided.events, at, &meta.metadata(), idem, &after);
    match infra::records::append_with_cases(&state.pool, &append, &decided.cases).await? {
        AppendOutcome::Appended { .. } => {
            state.appended.notify_one();
            Ok(after)
        }
        AppendOutcome::Duplicate { case_id, .. } => Ok(load::<R>(state, &meta.principal, case_id, None).await?.0),
    }
}

/// Runs a command on a record the caller may read: `decide` is asked against the record as it
/// stands (again after a lost race, unless `If-Match` names a version: then 412).
///
/// # Errors
/// 403 when the role may never do `action`; 404 out of reach; 412 on a stale `If-Match`;
/// whatever `decide` refuses; 409 `contention` after [`MAX_ATTEMPTS`] lost races.
pub async fn write<R: Record>(
    state: &AppState,
    meta: &RequestMeta,
    id: Uuid,
    action: Action,
    body: &impl Serialize,
    decide: impl FnMut(&R) -> Result<Decided<R>, ApiError>,
) -> Result<R, ApiError> {
    meta.principal.require(action)?;
    write_inner(state, meta, id, true, body, decide).await
}

/// [`write`] on behalf of a rule of the trade, whatever the caller's scope of records: a case
/// registered with a contact card records the card's use on its batch.
///
/// # Errors
/// As [`write`], but for 403.
pub async fn write_unscoped<R: Record>(
    state: &AppState,
    meta: &RequestMeta,
    id: Uuid,
    body: &impl Serialize,
    decide: impl FnMut(&R) -> Result<Decided<R>, ApiError>,
) -> Result<R, ApiError> {
    let meta = RequestMeta { idempotency_key: None, if_match: None, ..meta.clone() };
    write_inner(state, &meta, id, false, body, decide).await
}

async fn write_inner<R: Record>(
    state: &AppState,
    meta: &RequestMeta,
    id: Uuid,
    scoped: bool,
    body: &impl Serialize,
    mut decide: impl FnMut(&R) -> Result<Decided<R>, ApiError>,
) -> Result<R, ApiError> {
    let idem = meta.idempotency(R::STREAM, Some(domain::CaseId::from_uuid(id)), body);
    if let Some(k) = &idem
        && let Some((hash, AppendOutcome::Duplicate { .. })) = state.store.find_idempotency(&k.scope, &k.key).await?
    {
        if hash != k.request_hash {
            return Err(ApiError::IdempotencyMismatch);
        }
        return Ok(load::<R>(state, &meta.principal, id, None).await?.0);
    }
    let mut current = 0;
    for _ in 0..MAX_ATTEMPTS {
        let (record, loaded) = if scoped {
            load::<R>(state, &meta.principal, id, None).await?
        } else {
            let loaded = infra::records::load::<R>(&state.pool, RecordId::from_uuid(id), None).await?;
            let record = loaded.record.clone().ok_or(ApiError::NotFound(R::STREAM))?;
            (record, loaded)
        };
        current = loaded.version();
        IfMatch::check(meta.if_match.as_ref(), current)?;
        let decided = decide(&record)?;
        let at = now();
        let after = fold_new::<R>(Some(record), RecordId::from_uuid(id), &decided.events, at)?;
        let append = RecordAppend::new(
            RecordId::from_uuid(id),
            current,
            loaded.head_hash(),
            &decided.events,
            at,
            &meta.metadata(),
            idem.clone(),
            &after,
        );
        match infra::records::append_with_cases(&state.pool, &append, &decided.cases).await {
            Ok(AppendOutcome::Appended { .. }) => {
                state.appended.notify_one();
                return Ok(after);
            }
            Ok(AppendOutcome::Duplicate { .. }) => return Ok(load::<R>(state, &meta.principal, id, None).await?.0),
            // Decided again on the record as it now is; an If-Match is checked again there (see
            // `service::execute`).
            Err(StoreError::Conflict { .. }) => {
                let jitter = std::time::Duration::from_millis(u64::from(rand::random::<u8>() % 20));
                tokio::time::sleep(jitter).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Contention { current })
}

fn fold_new<R: Record>(
    mut state: Option<R>,
    id: RecordId,
    events: &[R::Event],
    at: DateTime<Utc>,
) -> Result<R, ApiError> {
    for e in events {
        state = Some(R::apply(state, id, e, at).map_err(ApiError::internal)?);
    }
    state.ok_or_else(|| ApiError::internal(std::io::Error::other("a record command produced no events")))
}

/// A case that came from a record, with where it stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkedCase {
    /// The case.
    pub case_id: Uuid,
    /// Its receipt code.
    pub receipt_code: String,
    /// Its status now.
    pub status: String,
    /// The item of the record it came from (an opinion's number, a finding's, a card's serial,
    /// a response's id).
    pub item: Option<String>,
}

/// The cases a record brought (`ids`, from its state), as the caller may see them, and the ids
/// among them the caller may not see (a handler sees the cases of their unit only, and never one
/// that accuses it): those are left out of the list and must be redacted from the record.
///
/// # Errors
/// A database failure.
pub async fn linked_cases(
    state: &AppState,
    principal: &Principal,
    ids: &[Uuid],
    as_of: Option<DateTime<Utc>>,
) -> Result<(Vec<LinkedCase>, std::collections::HashSet<Uuid>), ApiError> {
    let mut rows = infra::records::cases_status(&state.pool, ids).await?;
    // As of a moment: each case's status then (replayed), and none that did not exist yet.
    if let Some(at) = as_of {
        let mut then = Vec::with_capacity(rows.len());
        for (id, _, code, item) in rows {
            let loaded = state.store.load_until(domain::CaseId::from_uuid(id), None, Some(at)).await?;
            if let Some(case) = loaded.case {
                then.push((id, case.status.as_str().to_owned(), code, item));
            }
        }
        rows = then;
    }
    let scope = principal.require(Action::ReadCase).ok();
    let visible: Option<std::collections::HashSet<Uuid>> = match (scope, principal.unit) {
        (Some(Scope::All), _) => None,
        (Some(Scope::OwnUnit), unit) => {
            Some(state.ledger.cases_of_unit(ids, unit.map(|u| u.as_uuid())).await?.into_iter().collect())
        }
        (None, _) => Some(std::collections::HashSet::new()),
    };
    let hidden: std::collections::HashSet<Uuid> =
        ids.iter().copied().filter(|id| visible.as_ref().is_some_and(|v| !v.contains(id))).collect();
    let list = rows
        .into_iter()
        .filter(|r| !hidden.contains(&r.0))
        .map(|(case_id, status, receipt_code, item)| LinkedCase { case_id, receipt_code, status, item })
        .collect();
    Ok((list, hidden))
}

/// Blanks what a reader may not see of the items `numbers` of a record (the findings that became
/// cases they may not see): in the record's state (`findings`) and in its events (a finding's
/// `number`, a re-check's `finding`).
pub fn hide_items(v: &mut serde_json::Value, numbers: &[u32]) {
    use serde_json::Value;
    if numbers.is_empty() {
        return;
    }
    let hidden = |o: &serde_json::Map<String, Value>, key: &str| {
        o.get(key).and_then(Value::as_u64).is_some_and(|n| numbers.iter().any(|h| u64::from(*h) == n))
    };
    let blank = |o: &mut serde_json::Map<String, Value>| {
        for k in ["text", "rectification", "note"] {
            if o.contains_key(k) {
                o.insert(k.into(), Value::Null);
            }
        }
        for k in ["evidence", "rechecks"] {
            if o.contains_key(k) {
                o.insert(k.into(), Value::Array(Vec::new()));
            }
        }
    };
    if let Some(o) = v.as_object_mut() {
        if hidden(o, "number") || hidden(o, "finding") {
            blank(o);
        }
        if let Some(findings) = o.get_mut("findings").and_then(Value::as_array_mut) {
            for f in findings.iter_mut().filter_map(Value::as_object_mut) {
                if hidden(f, "number") {
                    blank(f);
                }
            }
        }
    }
}

/// Replaces every string of `v` that names one of `hidden` by `null` (a case id the reader may
/// not see, wherever the record's state names it).
pub fn redact_ids(v: &mut serde_json::Value, hidden: &std::collections::HashSet<Uuid>) {
    use serde_json::Value;
    match v {
        Value::String(s) if s.parse::<Uuid>().is_ok_and(|u| hidden.contains(&u)) => *v = Value::Null,
        Value::Array(items) => items.iter_mut().for_each(|i| redact_ids(i, hidden)),
        Value::Object(map) => map.values_mut().for_each(|i| redact_ids(i, hidden)),
        _ => {}
    }
}
