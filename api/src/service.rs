//! The application service: load the case, check scope and preconditions, look up the facts
//! the domain needs, decide, append. No HTTP here beyond the error type, and no SQL.

use chrono::{DateTime, Utc};
use domain::{
    Case, CaseId, CategoryId, Command, Complainant, Context, DeadlineStatus, Description, Reason, Registration, Text,
    Title, UnitId, UnitKind, decide, evolve,
};
use infra::store::LoadedCase;
use infra::vault::{Opened, PersonalData};
use infra::{AppendOutcome, IdempotencyKey, Metadata, NewEvent, StoreError};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::{Action, Principal, Scope};
use crate::dto::*;
use crate::problem::{ApiError, FieldError};
use crate::startup::AppState;

/// How often a command is re-decided when concurrent writers get in first (without If-Match).
/// Each lost race means another writer succeeded, so the case always makes progress; the
/// jittered pause spreads out writers that keep colliding.
const MAX_ATTEMPTS: u32 = 20;

/// The request's context: who, which request, which idempotency key.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The caller.
    pub principal: Principal,
    /// The request id.
    pub request_id: Option<String>,
    /// The client's Idempotency-Key.
    pub idempotency_key: Option<String>,
    /// The client's `If-Match` precondition.
    pub if_match: Option<IfMatch>,
}

/// An `If-Match` precondition (RFC 9110 §13.1.1): `*` (the case exists) or a list of versions
/// (`"3"`, `W/"3"`, `"3", "4"`), any of which may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`.
    Any,
    /// The versions listed.
    Versions(Vec<u32>),
}

impl IfMatch {
    /// Parses the header; `None` when it is not `*` or a list of version tags. A weak tag
    /// (`W/"3"`) is well formed but never matches: `If-Match` compares strongly (RFC 9110
    /// §13.1.1), so a list of weak tags alone answers 412.
    pub fn parse(header: &str) -> Option<Self> {
        let h = header.trim();
        if h == "*" {
            return Some(Self::Any);
        }
        let tags: Option<Vec<Option<u32>>> = h
            .split(',')
            .map(|t| {
                let t = t.trim();
                let (weak, t) = t.strip_prefix("W/").map_or((false, t), |rest| (true, rest));
                let version: u32 = t.strip_prefix('"')?.strip_suffix('"')?.parse().ok()?;
                Some((!weak).then_some(version))
            })
            .collect();
        tags.filter(|t| !t.is_empty()).map(|t| Self::Versions(t.into_iter().flatten().collect()))
    }

    /// Whether the case at `version` satisfies it.
    pub fn matches(&self, version: u32) -> bool {
        match self {
            Self::Any => true,
            Self::Versions(v) => v.contains(&version),
        }
    }

    /// Refuses (412) a case whose version does not satisfy it.
    pub fn check(this: Option<&Self>, version: u32) -> Result<(), ApiError> {
        match this {
            Some(m) if !m.matches(version) => Err(ApiError::PreconditionFailed { current: version }),
            _ => Ok(()),
        }
    }
}

impl RequestMeta {
    pub(crate) fn metadata(&self) -> Metadata {
        Metadata {
            actor_id: self.principal.id.as_str().to_owned(),
            actor_role: self.principal.role.as_str().to_owned(),
            request_id: self.request_id.clone(),
            idempotency_key: self.idempotency_key.clone(),
            correlation_id: None,
        }
    }

    /// The idempotency record of this request: the key scoped by the caller, and a hash of
    /// what was asked (the action, the case and the parsed body).
    pub(crate) fn idempotency(
        &self,
        action: &str,
        case: Option<CaseId>,
        body: &impl serde::Serialize,
    ) -> Option<IdempotencyKey> {
        let key = self.idempotency_key.as_ref()?;
        let mut h = Sha256::new();
        h.update(action.as_bytes());
        h.update([0]);
        h.update(case.map(|c| c.to_string()).unwrap_or_default().as_bytes());
        h.update([0]);
        h.update(serde_json::to_vec(body).unwrap_or_default());
        Some(IdempotencyKey {
            scope: self.principal.id.as_str().to_owned(),
            key: key.clone(),
            request_hash: h.finalize().into(),
        })
    }
}

pub(crate) fn now() -> DateTime<Utc> {
    domain::truncate_to_micros(Utc::now())
}

/// Collects field errors while converting a request.
#[derive(Default)]
pub(crate) struct Fields(pub(crate) Vec<FieldError>);

impl Fields {
    pub(crate) fn take<T>(&mut self, field: &str, r: Result<T, domain::ValidationError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(FieldError { field: field.into(), message: e.message.into() });
                None
            }
        }
    }
    pub(crate) fn push(&mut self, field: &str, message: &str) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::Validation(self.0)) }
    }
}

/// The range of times the service accepts from clients: outside it, a time is a typo or an
/// attack (PostgreSQL and chrono disagree on far years), never a case.
pub fn bounded_time(field: &str, t: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    let lo = DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH); // 2000-01-01
    let hi = DateTime::<Utc>::from_timestamp(4_102_444_800, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH); // 2100-01-01
    if t < lo || t >= hi {
        return Err(ApiError::Validation(vec![FieldError {
            field: field.into(),
            message: "must lie between 2000 and 2099".into(),
        }]));
    }
    Ok(domain::truncate_to_micros(t))
}

pub(crate) async fn check_unit(state: &AppState, field: &str, id: Uuid) -> Result<UnitId, ApiError> {
    match state.reference.unit(UnitId::from_uuid(id)).await? {
        Some(u) if u.active => Ok(u.id),
        Some(_) => Err(ApiError::UnknownReference(format!("{field}: the unit is deactivated"))),
        None => Err(ApiError::UnknownReference(format!("{field}: no such unit"))),
    }
}

/// The village a case comes from: an active unit of the village tier (a village, a farm or a
/// community), never a department or the town.
pub(crate) async fn check_village(state: &AppState, id: Uuid) -> Result<UnitId, ApiError> {
    let unit = check_unit(state, "village_id", id).await?;
    match state.reference.unit(unit).await? {
        Some(u) if matches!(u.kind, UnitKind::Village | UnitKind::Farm | UnitKind::Community) => Ok(unit),
        _ => Err(ApiError::UnknownReference("village_id: not a village, farm or community".into())),
    }
}

async fn check_category(state: &AppState, id: Uuid) -> Result<CategoryId, ApiError> {
    match state.reference.category(CategoryId::from_uuid(id)).await? {
        Some(c) if c.active => Ok(c.id),
        Some(_) => Err(ApiError::UnknownReference("category_id: the category is deactivated".into())),
        None => Err(ApiError::UnknownReference("category_id: no such category".into())),
    }
}

/// A new case decided and folded, not yet appended.
pub(crate) struct NewCase {
    /// Its id.
    pub id: CaseId,
    /// Its first events, stamped.
    pub events: Vec<NewEvent>,
    /// The case they fold to.
    pub case: Case,
    /// The complainant's subject key, stored by the registration's append (none: anonymous).
    pub subject_key: Option<infra::vault::SubjectKey>,
    /// The complainant's data in the clear, as given: the response masks it without opening the
    /// vault again.
    pub personal: Option<PersonalData>,
}

impl NewCase {
    /// Its registration inside another record's append, storing the subject key with it.
    pub(crate) fn append(&self) -> infra::store::NewCaseAppend {
        infra::store::NewCaseAppend::new(self.id, &self.events, &self.case).with_subject_key(self.subject_key.as_ref())
    }

    /// As [`NewCase::append`], recording the request's idempotency key with the case.
    pub(crate) fn append_with_key(&self, idem: Option<infra::IdempotencyKey>) -> infra::store::NewCaseAppend {
        infra::store::NewCaseAppend::new_with_key(self.id, &self.events, &self.case, idem)
            .with_subject_key(self.subject_key.as_ref())
    }

    /// The case's view for `principal` (the complainant masked from the data in hand).
    pub(crate) async fn view(&self, state: &AppState, principal: &Principal) -> Result<CaseView, ApiError> {
        view_with(state, principal, &self.case, now(), self.personal.clone().map(Opened::Clear)).await
    }
}

/// Registers a case. Returns the view and whether it was created now (`false` for a replay).
/// With `contact_card_serial`, the card's batch records the card's use in the same
/// transaction (an unknown or used serial is 422).
pub async fn register(
    state: &AppState,
    meta: &RequestMeta,
    req: RegisterCaseRequest,
) -> Result<(CaseView, bool), ApiError> {
    let scope = meta.principal.require(Action::RegisterCase)?;
    if req.accept {
        meta.principal.require(Action::Accept)?;
    }
    if req.notice.is_some() {
        meta.principal.require(Action::NotifyCitizen)?;
    }
    let idem = meta.idempotency("register", None, &req);
    if let Some(view) = replay_idempotent(state, meta, scope, idem.as_ref(), None).await? {
        return Ok((view, false));
    }
    if let Some(serial) = req.contact_card_serial {
        let case = crate::routes::contact_cards::register_with_card(state, meta, &req, serial, idem).await?;
        return Ok((view(state, &meta.principal, &case, now()).await?, true));
    }
    // A receipt code is derived from the case id; on the rare collision with an existing code
    // (the ledger's unique key refuses it) the case gets a new id.
    for _ in 0..3 {
        let new = prepare_case(state, meta, &req, None, None).await?;
        let appended =
            state.store.register(new.id, &new.events, idem.as_ref(), &new.case, new.subject_key.as_ref(), None).await;
        return match appended {
            Ok(AppendOutcome::Appended { .. }) => {
                state.appended.notify_one();
                Ok((new.view(state, &meta.principal).await?, true))
            }
            Ok(AppendOutcome::Duplicate { case_id, last_version, .. }) => {
                Ok((view_at(state, &meta.principal, CaseId::from_uuid(case_id), last_version).await?, false))
            }
            Err(StoreError::Unique(c)) if c == "ledger_receipt_code_key" => continue,
            Err(e) => Err(e.into()),
        };
    }
    Err(ApiError::internal(std::io::Error::other("three receipt-code collisions in a row")))
}

/// Registers a case that comes with no idempotency key (from a citizen online, or an Open311
/// client), with the slow hash of the receipt secret its citizen holds, if any. A receipt code
/// that collides with an existing one (the ledger's unique key refuses it) gets the case a new
/// id, at most three times. Returns the case as registered.
pub(crate) async fn register_unkeyed(
    state: &AppState,
    meta: &RequestMeta,
    req: &RegisterCaseRequest,
    secret_hash: Option<&str>,
) -> Result<Case, ApiError> {
    for _ in 0..3 {
        let new = prepare_case(state, meta, req, None, None).await?;
        let appended =
            state.store.register(new.id, &new.events, None, &new.case, new.subject_key.as_ref(), secret_hash).await;
        match appended {
            Ok(_) => {
                state.appended.notify_one();
                return Ok(new.case);
            }
            Err(StoreError::Unique(c)) if c == "ledger_receipt_code_key" => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal(std::io::Error::other("three receipt-code collisions in a row")))
}

/// The campaign and phase a case received on `received_at` belongs to: the campaign of the
/// record it came from (`hint`), else a campaign its village takes part in; tagged only when the
/// day (China Standard Time) falls in one of that campaign's phases and the campaign's summary
/// report is not frozen yet.
async fn campaign_tag(
    state: &AppState,
    hint: Option<domain::RecordId>,
    village: Option<UnitId>,
    received_at: DateTime<Utc>,
) -> Result<Option<domain::records::CampaignTag>, ApiError> {
    use domain::records::campaign::Campaign;
    let day = domain::records::china_day(received_at);
    // The record's campaign first; when its days do not hold the case's, the village's.
    let mut candidates: Vec<serde_json::Value> = match hint {
        Some(c) => infra::records::get(&state.pool, c.as_uuid()).await?.map(|r| r.doc).into_iter().collect(),
        None => Vec::new(),
    };
    if let Some(v) = village {
        candidates.extend(infra::records::campaigns_of(&state.pool, v.as_uuid(), day).await?);
    }
    // A campaign whose summary report is frozen takes no more cases: the printed report stands
    // for all of them.
    for c in candidates.into_iter().filter_map(|doc| serde_json::from_value::<Campaign>(doc).ok()) {
        if let Some(phase) = c.phase_on(day)
            && infra::report::frozen_count(&state.pool, c.id.as_uuid()).await? == 0
        {
            return Ok(Some(domain::records::CampaignTag { campaign: c.id, phase }));
        }
    }
    Ok(None)
}

/// A registration's fields checked without the database (texts, the complainant's, the
/// notice), every invalid field named at once: a batch (a meeting's opinions) checks each before
/// it reads anything.
pub(crate) fn check_registration_fields(req: &RegisterCaseRequest) -> Result<CheckedRegistration, ApiError> {
    let mut f = Fields::default();
    let title = f.take("title", Title::parse(&req.title));
    let description = f.take("description", Description::parse(&req.description));
    let complainant =
        req.complainant.clone().unwrap_or(ComplainantInput { anonymous: true, ..ComplainantInput::default() });
    let clean = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !domain::is_blank(s)).map(str::to_owned);
    let (name, phone, id_number) = (clean(&complainant.name), clean(&complainant.phone), clean(&complainant.id_number));
    let email = clean(&complainant.email);
    if complainant.anonymous && (name.is_some() || phone.is_some() || id_number.is_some() || email.is_some()) {
        f.push("complainant", "an anonymous complainant gives no name, phone, email or ID number");
    }
    if !complainant.anonymous && name.is_none() && phone.is_none() && email.is_none() {
        f.push("complainant", "give a name, a phone number or an email address, or set anonymous");
    }
    // Checked as sent (no trimming): the pattern the spec states allows no white space.
    let raw_email = complainant.email.as_deref().filter(|s| !domain::is_blank(s));
    if let Some(Err(e)) = raw_email.map(domain::personal::check_email) {
        f.push("complainant.email", e.message);
    }
    let location = match &req.location {
        None => None,
        Some(l) => {
            let address = match l.address.as_deref() {
                None => None,
                Some(a) => f.take("location.address", domain::Address::parse(a)),
            };
            let coordinates = match (l.lat, l.long) {
                (None, None) => None,
                (Some(lat), Some(long)) => match domain::Coordinates::parse(lat, long) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        f.push(&format!("location.{}", e.field), e.message);
                        None
                    }
                },
                _ => {
                    f.push("location", "give both lat and long, or neither");
                    None
                }
            };
            if address.is_none() && coordinates.is_none() && l.address.is_none() && l.lat.is_none() {
                f.push("location", "give an address or coordinates, or leave location out");
            }
            Some(domain::Location { address, coordinates })
        }
    };
    if name.as_deref().is_some_and(|n| n.chars().count() > 50 || n.chars().any(char::is_control)) {
        f.push("complainant.name", "must be at most 50 printable characters");
    }
    if let Some(Err(e)) = phone.as_deref().map(domain::personal::check_phone) {
        f.push("complainant.phone", e.message);
    }
    if let Some(Err(e)) = id_number.as_deref().map(domain::personal::check_id_number) {
        f.push("complainant.id_number", e.message);
    }
    let notice = match &req.notice {
        Some(n) => f.take("notice.content", Text::parse(&n.content)).map(|content| Command::NotifyCitizen {
            kind: n.kind.into(),
            method: n.method.into(),
            content,
            receipt_code_given: n.receipt_code_given,
            notified_at: n.notified_at,
        }),
        None => None,
    };
    f.finish()?;
    let (Some(title), Some(description)) = (title, description) else {
        return Err(ApiError::Validation(Vec::new()));
    };
    Ok(CheckedRegistration {
        title,
        description,
        notice,
        anonymous: complainant.anonymous,
        name,
        phone,
        id_number,
        email,
        location,
    })
}

/// A registration's fields as [`check_registration_fields`] found them.
pub(crate) struct CheckedRegistration {
    pub title: Title,
    pub description: Description,
    pub notice: Option<Command>,
    pub anonymous: bool,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub id_number: Option<String>,
    pub email: Option<String>,
    pub location: Option<domain::Location>,
}

/// Checks a registration and decides its first events (registered, and at the counter accepted
/// and told), sealing the complainant: everything but the append. `source` is the record the
/// case comes from; `campaign` that record's campaign.
pub(crate) async fn prepare_case(
    state: &AppState,
    meta: &RequestMeta,
    req: &RegisterCaseRequest,
    source: Option<domain::records::CaseSource>,
    campaign: Option<domain::RecordId>,
) -> Result<NewCase, ApiError> {
    let CheckedRegistration { title, description, notice, anonymous, name, phone, id_number, email, location } =
        check_registration_fields(req)?;

    let category = match req.category_id {
        Some(id) => Some(check_category(state, id).await?),
        None => None,
    };
    let village = match req.village_id {
        Some(id) => Some(check_village(state, id).await?),
        None => None,
    };
    let accused_unit = match req.accused_unit_id {
        Some(id) => Some(check_unit(state, "accused_unit_id", id).await?),
        None => None,
    };
    let at = now();
    let received_at = match req.received_at {
        Some(t) => bounded_time("received_at", t)?,
        None => at,
    };
    let campaign = campaign_tag(state, campaign, village, received_at).await?;
    // How notices can reach the citizen: known from the contacts in hand, kept beside the sealed
    // data (the contacts themselves are opened only when a notice is sent).
    let reachable_by: Vec<domain::ContactChannel> =
        [phone.as_ref().map(|_| domain::ContactChannel::Sms), email.as_ref().map(|_| domain::ContactChannel::Email)]
            .into_iter()
            .flatten()
            .collect();
    // Sealed here, its key stored by the registration's append (one round trip, one commit).
    let (sealed, subject_key, personal) = if anonymous {
        (None, None, None)
    } else {
        let data = PersonalData { name, phone, id_number: id_number.map(|s| s.to_ascii_uppercase()), email };
        let (sealed, key) = state.vault.seal_for_append(&data)?;
        (Some(sealed), Some(key), Some(data))
    };
    let policy = state.reference.policy_for(category).await?;
    let calendar = state.reference.working_calendar().await?;
    let units = state.reference.unit_tree().await?;
    let actor = meta.principal.actor();
    let id = CaseId::from_uuid(Uuid::new_v4());
    let registration = Registration {
        id,
        channel: req.channel.into(),
        kind: req.kind.into(),
        title,
        description,
        category,
        village,
        accused_unit,
        urgency: req.urgency.unwrap_or(Urgency::Normal).into(),
        received_at,
        complainant: Complainant { anonymous, sealed, reachable_by },
        campaign,
        source,
        location,
    };
    let ctx =
        Context { now: at, actor: &actor, calendar: &calendar, policy: &policy, units: &units, linked_accused: &[] };
    let mut events = decide(None, &Command::Register(Box::new(registration)), &ctx)?;
    let mut case = fold_new(None, id, &events, at)?;
    for follow in [req.accept.then_some(Command::Accept), notice].into_iter().flatten() {
        let more = decide(Some(&case), &follow, &ctx)?;
        case = fold_new(Some(case), id, &more, at)?;
        events.extend(more);
    }
    Ok(NewCase { id, events: stamp(events, at, meta), case, subject_key, personal })
}

/// Runs a command on an existing case, as described in the module docs of [`crate::routes::cases`].
pub async fn execute(
    state: &AppState,
    meta: &RequestMeta,
    case_id: CaseId,
    action: Action,
    command: Command,
    body: &impl serde::Serialize,
) -> Result<CaseView, ApiError> {
    let scope = meta.principal.require(action)?;
    let idem = meta.idempotency(command.name(), Some(case_id), body);
    if let Some(view) = replay_idempotent(state, meta, scope, idem.as_ref(), Some(case_id)).await? {
        return Ok(view);
    }
    let result = async {
        check_references(state, &command).await?;
        let actor = meta.principal.actor();
        let units = state.reference.unit_tree().await?;
        let mut attempt = 0;
        while attempt < MAX_ATTEMPTS {
            crate::metrics::append_attempt(attempt);
            let loaded = state.store.load(case_id).await?;
            let case = in_scope(&meta.principal, scope, &loaded)?;
            IfMatch::check(meta.if_match.as_ref(), case.version)?;
            let policy = state.reference.policy_for(case.category).await?;
            let calendar = state.reference.working_calendar().await?;
            let at = now();
            // 回避 through a merge: a command that hands the case to units is decided against the
            // accusations of the duplicates linked to it, read under the case's lock in the append.
            let hands_over = matches!(
                command,
                Command::Assign { .. }
                    | Command::Transfer { .. }
                    | Command::ApproveReturn { .. }
                    | Command::ReplaceCoUnit { .. }
            );
            let ctx = Context {
                now: at,
                actor: &actor,
                calendar: &calendar,
                policy: &policy,
                units: &units,
                linked_accused: &[],
            };
            let appended = if let Command::LinkDuplicate { of, .. } = command {
                link_duplicate(state, meta, &loaded, case, of, &ctx, idem.as_ref()).await?
            } else if hands_over {
                hand_over(state, meta, &loaded, case, &command, &ctx, idem.as_ref()).await?
            } else {
                let events = decide(Some(case), &command, &ctx)?;
                if events.is_empty() {
                    // Nothing to record (a recomputation that changed nothing).
                    return view(state, &meta.principal, case, at).await;
                }
                let next = fold_new(Some(case.clone()), case_id, &events, at)?;
                let new = stamp(events, at, meta);
                state
                    .store
                    .append(case_id, case.version, loaded.head_hash(), &new, idem.as_ref(), &next)
                    .await
                    .map(|outcome| (outcome, next))
            };
            crate::metrics::append_outcome(&appended);
            match appended {
                Ok((AppendOutcome::Appended { .. }, next)) => {
                    state.appended.notify_one();
                    return view(state, &meta.principal, &next, at).await;
                }
                Ok((AppendOutcome::Duplicate { case_id, last_version, .. }, _)) => {
                    return view_at(state, &meta.principal, CaseId::from_uuid(case_id), last_version).await;
                }
                // Another write got in first: decide again on the case as it now is. An If-Match
                // is checked again there, so `*`, or a list naming the new version, still holds
                // and the command is applied; a version it no longer names answers 412.
                Err(StoreError::Conflict { .. }) => {
                    attempt += 1;
                    let jitter = u64::from(Uuid::new_v4().as_bytes()[0] % 8);
                    tokio::time::sleep(std::time::Duration::from_millis(u64::from(attempt.min(5)) + jitter)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let current = state.store.load(case_id).await?.version();
        Err(ApiError::Contention { current })
    }
    .await;
    // A retry sent while the first request with its key was still running passed the check
    // above before the first committed, then met the case as the first left it: an If-Match
    // that no longer holds, a command already done ("already accepted"), a conflict. Once the
    // first has committed, the retry answers what the first did, as a later retry would.
    match result {
        Err(e) if idem.is_some() => match replay_idempotent(state, meta, scope, idem.as_ref(), Some(case_id)).await? {
            Some(view) => Ok(view),
            None => Err(e),
        },
        r => r,
    }
}

/// Runs a command that is authorised by other means than the table of roles — a citizen who
/// showed the receipt secret, the delivery worker recording a notice — on the latest state,
/// retrying when a concurrent writer got in first. Returns the case after the command. Only
/// commands that hand the case to no unit and link nothing may come here.
pub(crate) async fn execute_trusted(
    state: &AppState,
    meta: &RequestMeta,
    case_id: CaseId,
    command: &Command,
) -> Result<Case, ApiError> {
    let actor = meta.principal.actor();
    let units = state.reference.unit_tree().await?;
    for attempt in 0..MAX_ATTEMPTS {
        let loaded = state.store.load(case_id).await?;
        let case = loaded.case.as_ref().ok_or(ApiError::NotFound("case"))?;
        let policy = state.reference.policy_for(case.category).await?;
        let calendar = state.reference.working_calendar().await?;
        let at = now();
        let ctx = Context {
            now: at,
            actor: &actor,
            calendar: &calendar,
            policy: &policy,
            units: &units,
            linked_accused: &[],
        };
        let events = decide(Some(case), command, &ctx)?;
        if events.is_empty() {
            return Ok(case.clone());
        }
        let next = fold_new(Some(case.clone()), case_id, &events, at)?;
        let new = stamp(events, at, meta);
        match state.store.append(case_id, case.version, loaded.head_hash(), &new, None, &next).await {
            Ok(_) => {
                state.appended.notify_one();
                return Ok(next);
            }
            Err(StoreError::Conflict { .. }) => {
                let jitter = u64::from(Uuid::new_v4().as_bytes()[0] % 8);
                tokio::time::sleep(std::time::Duration::from_millis(u64::from(attempt.min(5)) + jitter)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let current = state.store.load(case_id).await?.version();
    Err(ApiError::Contention { current })
}

async fn check_references(state: &AppState, command: &Command) -> Result<(), ApiError> {
    match command {
        Command::Assign { unit, co_units, .. } => {
            check_unit(state, "unit_id", unit.as_uuid()).await?;
            for u in co_units {
                check_unit(state, "co_unit_ids", u.as_uuid()).await?;
            }
            Ok(())
        }
        Command::Transfer { to_unit: Some(unit), .. } => {
            check_unit(state, "to_unit_id", unit.as_uuid()).await.map(drop)
        }
        Command::ApproveReturn { to_unit: Some(unit) } => check_unit(state, "unit_id", unit.as_uuid()).await.map(drop),
        Command::Classify { category } => check_category(state, category.as_uuid()).await.map(drop),
        _ => Ok(()),
    }
}

/// The route the routing rules (归口) propose for a case: the first that goes to an active unit
/// the case does not accuse (回避), or none.
pub async fn proposed_route(state: &AppState, case: &Case) -> Result<Option<infra::reference::Route>, ApiError> {
    let routes = state.reference.routes_for(case.category, case.village).await?;
    if routes.is_empty() {
        return Ok(None);
    }
    let units = state.reference.unit_tree().await?;
    Ok(routes.into_iter().find(|r| {
        domain::UnitDirectory::is_active(&units, r.unit_id)
            && !case.accused_unit.is_some_and(|a| domain::UnitDirectory::is_within(&units, r.unit_id, a))
    }))
}

/// The tier a unit sits at; a tier given that contradicts it is refused (422).
async fn tier_for(state: &AppState, unit: UnitId, given: Option<crate::dto::Tier>) -> Result<domain::Tier, ApiError> {
    let own = match state.reference.unit(unit).await? {
        Some(u) => infra::reference::tier_of(u.kind),
        None => return Err(ApiError::UnknownReference("unit_id: no such unit".into())),
    };
    match given.map(domain::Tier::from) {
        Some(t) if t != own => Err(ApiError::Validation(vec![FieldError {
            field: "tier".into(),
            message: "must be the unit's own tier: village for a village, farm or community, town otherwise".into(),
        }])),
        _ => Ok(own),
    }
}

/// The unit and tier an assignment goes to: the one given, else the routing rule (归口) of the
/// case's category and village ([`proposed_route`]); 422 when there is none.
pub async fn route(
    state: &AppState,
    principal: &Principal,
    case_id: CaseId,
    unit: Option<Uuid>,
    tier: Option<crate::dto::Tier>,
) -> Result<(UnitId, domain::Tier), ApiError> {
    let unit = match unit {
        Some(u) => UnitId::from_uuid(u),
        None => {
            let scope = principal.require(Action::Assign)?;
            let loaded = state.store.load(case_id).await?;
            let case = in_scope(principal, scope, &loaded)?;
            match proposed_route(state, case).await? {
                Some(r) => r.unit_id,
                None => {
                    return Err(ApiError::Validation(vec![FieldError {
                        field: "unit_id".into(),
                        message: "is required: no routing rule covers the case's category and village".into(),
                    }]));
                }
            }
        }
    };
    Ok((unit, tier_for(state, unit, tier).await?))
}

/// 合并 under both cases' locks: the facts about the other case (is it itself a duplicate; are
/// others linked to this one) are read inside the appending transaction, after both advisory
/// locks are taken in a fixed order, so that X→Y and Y→X sent at the same moment cannot both
/// pass (one of them sees the other).
async fn link_duplicate(
    state: &AppState,
    meta: &RequestMeta,
    loaded: &LoadedCase,
    case: &Case,
    of: CaseId,
    ctx: &Context<'_>,
    idem: Option<&IdempotencyKey>,
) -> Result<Result<(AppendOutcome, Case), StoreError>, ApiError> {
    let mut after: Option<Case> = None;
    let outcome = state
        .store
        .append_with_link_facts(case.id, of, |facts| {
            if !facts.target_exists {
                return Err(ApiError::UnknownReference("of: no such case".into()));
            }
            let command = Command::LinkDuplicate { of, target: facts.target };
            plan(meta, loaded, case, &command, ctx, idem, &mut after)
        })
        .await;
    planned_outcome(outcome, after, case)
}

/// Decides `command` on `case` and plans its append (the case after it kept in `after`): the
/// body of an append decided under locks ([`link_duplicate`], [`hand_over`]).
fn plan(
    meta: &RequestMeta,
    loaded: &LoadedCase,
    case: &Case,
    command: &Command,
    ctx: &Context<'_>,
    idem: Option<&IdempotencyKey>,
    after: &mut Option<Case>,
) -> Result<infra::PlannedAppend, ApiError> {
    let events = decide(Some(case), command, ctx)?;
    let next = fold_new(Some(case.clone()), case.id, &events, ctx.now)?;
    *after = Some(next.clone());
    Ok(infra::PlannedAppend {
        expected_version: case.version,
        prev_hash: loaded.head_hash(),
        events: stamp(events, ctx.now, meta),
        idempotency: idem.cloned(),
        after: next,
    })
}

/// What an append decided under locks came to: the store's error, the decision's refusal, or
/// the outcome with the case after it.
fn planned_outcome(
    outcome: Result<Result<AppendOutcome, ApiError>, StoreError>,
    after: Option<Case>,
    case: &Case,
) -> Result<Result<(AppendOutcome, Case), StoreError>, ApiError> {
    match outcome {
        Err(e) => Ok(Err(e)),
        Ok(Err(api)) => Err(api),
        Ok(Ok(o)) => Ok(Ok((o, after.unwrap_or_else(|| case.clone())))),
    }
}

/// A command that hands the case to units (assign, transfer, an approved return, a co-unit
/// replaced), decided under the case's lock against the units accused by the duplicates linked to
/// it at that moment (回避): a link committed meanwhile is seen, never raced past.
async fn hand_over(
    state: &AppState,
    meta: &RequestMeta,
    loaded: &LoadedCase,
    case: &Case,
    command: &Command,
    ctx: &Context<'_>,
    idem: Option<&IdempotencyKey>,
) -> Result<Result<(AppendOutcome, Case), StoreError>, ApiError> {
    let mut after: Option<Case> = None;
    let outcome = state
        .store
        .append_with_linked_accused(case.id, |linked_accused| {
            let ctx = Context { linked_accused: &linked_accused, ..*ctx };
            plan(meta, loaded, case, command, &ctx, idem, &mut after)
        })
        .await;
    planned_outcome(outcome, after, case)
}

/// A retry of an earlier request with the same key answers what the first one did, to a
/// caller who may still see the case: authorisation is checked again on the case as it is now
/// (a handler whose unit no longer holds it gets 404, exactly as a plain GET would).
async fn replay_idempotent(
    state: &AppState,
    meta: &RequestMeta,
    scope: Scope,
    idem: Option<&IdempotencyKey>,
    case: Option<CaseId>,
) -> Result<Option<CaseView>, ApiError> {
    let Some(idem) = idem else { return Ok(None) };
    let Some((hash, outcome)) = state.store.find_idempotency(&idem.scope, &idem.key).await? else {
        return Ok(None);
    };
    if hash != idem.request_hash || case.is_some_and(|c| c.as_uuid() != outcome.case_id()) {
        return Err(ApiError::IdempotencyMismatch);
    }
    let case_id = CaseId::from_uuid(outcome.case_id());
    in_scope(&meta.principal, scope, &state.store.load(case_id).await?)?;
    Ok(Some(view_at(state, &meta.principal, case_id, outcome.last_version()).await?))
}

fn in_scope<'a>(principal: &Principal, scope: Scope, loaded: &'a LoadedCase) -> Result<&'a Case, ApiError> {
    loaded.case.as_ref().filter(|c| principal.reaches(scope, c)).ok_or(ApiError::NotFound("case"))
}

pub(crate) fn stamp(events: Vec<domain::CaseEvent>, at: DateTime<Utc>, meta: &RequestMeta) -> Vec<NewEvent> {
    let metadata = meta.metadata();
    events.into_iter().map(|event| NewEvent { event, occurred_at: at, metadata: metadata.clone() }).collect()
}

fn fold_new(
    mut state: Option<Case>,
    id: CaseId,
    events: &[domain::CaseEvent],
    at: DateTime<Utc>,
) -> Result<Case, ApiError> {
    for e in events {
        state = Some(evolve(state, id, e, at).map_err(ApiError::internal)?);
    }
    state.ok_or_else(|| ApiError::internal(std::io::Error::other("a command produced no events")))
}

/// The case as the caller may see it, or 404.
pub async fn get(state: &AppState, principal: &Principal, case_id: CaseId) -> Result<CaseView, ApiError> {
    let scope = principal.require(Action::ReadCase)?;
    let loaded = state.store.load(case_id).await?;
    let case = in_scope(principal, scope, &loaded)?;
    view(state, principal, case, now()).await
}

/// The case's history as the caller may see it, or 404.
pub async fn history(
    state: &AppState,
    principal: &Principal,
    case_id: CaseId,
    after_version: u32,
    limit: usize,
) -> Result<EventList, ApiError> {
    let scope = principal.require(Action::ReadCase)?;
    let loaded = state.store.load(case_id).await?;
    in_scope(principal, scope, &loaded)?;
    let strip = principal.role == domain::Role::Handler;
    let events = loaded
        .events
        .iter()
        .filter(|e| e.version > after_version)
        .take(limit)
        .map(|e| {
            let mut v = event_view(e);
            if strip && let Some(obj) = v.payload.as_object_mut() {
                obj.remove("complainant");
            }
            v
        })
        .collect();
    Ok(EventList { case_id: case_id.as_uuid(), events })
}

/// An event as the API shows it.
pub fn event_view(e: &infra::StoredEvent) -> EventView {
    let meta = |k: &str| e.metadata.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    EventView {
        position: e.position,
        version: e.version,
        event_type: e.event_type.clone(),
        schema_version: e.schema_version,
        occurred_at: e.occurred_at,
        recorded_at: e.recorded_at,
        actor: ActorView { id: meta("actor_id").unwrap_or_default(), role: meta("actor_role").unwrap_or_default() },
        request_id: meta("request_id"),
        payload: e.payload.clone(),
        metadata: e.metadata.clone(),
        hash: hex::encode(e.hash),
        prev_hash: hex::encode(e.prev_hash),
    }
}

pub(crate) async fn view_at(
    state: &AppState,
    principal: &Principal,
    case_id: CaseId,
    version: u32,
) -> Result<CaseView, ApiError> {
    let loaded = state.store.load_until(case_id, Some(version), None).await?;
    let case = loaded.case.as_ref().ok_or(ApiError::NotFound("case"))?;
    view(state, principal, case, now()).await
}

/// The state label (`on_track`, `due_soon`, `overdue`), the working days overdue and the time
/// used (‰) of a deadline at `at`.
pub fn deadline_labels(
    started_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
    at: DateTime<Utc>,
    calendar: &domain::WorkingCalendar,
) -> (&'static str, u32, u32) {
    match domain::deadline_status(started_at, due_at, at, calendar) {
        DeadlineStatus::OnTrack => ("on_track", 0, domain::permille_used(started_at, due_at, at)),
        DeadlineStatus::DueSoon { permille } => ("due_soon", 0, permille),
        DeadlineStatus::Overdue { working_days } => ("overdue", working_days, 1000),
    }
}

/// Builds the view of a case for a caller at a moment: deadline state computed now, personal
/// data masked (or hidden from the accused unit's handlers).
pub async fn view(
    state: &AppState,
    principal: &Principal,
    case: &Case,
    at: DateTime<Utc>,
) -> Result<CaseView, ApiError> {
    view_with(state, principal, case, at, None).await
}

/// As [`view`], with the complainant's data already opened (`None`: opened from the vault).
async fn view_with(
    state: &AppState,
    principal: &Principal,
    case: &Case,
    at: DateTime<Utc>,
    opened: Option<Opened>,
) -> Result<CaseView, ApiError> {
    let calendar = state.reference.working_calendar().await?;
    let paused = case.paused.is_some();
    let clock = |d: domain::Deadline| {
        let (label, overdue, permille) = deadline_labels(d.started_at, d.due_at, at, &calendar);
        DeadlineView {
            stage: d.stage.into(),
            due_at: d.due_at,
            started_at: d.started_at,
            rule: serde_json::to_value(d.rule).unwrap_or_default(),
            // A paused clock is never overdue: it stands until resumed.
            state: if paused { "paused".into() } else { label.into() },
            working_days_overdue: if paused { 0 } else { overdue },
            permille_used: permille,
            calendar_incomplete: d.calendar_incomplete,
        }
    };
    let deadline = case.deadline.map(|d| {
        let mut v = clock(d);
        // A return waiting for the dispatcher stops the unit's clock (a refusal credits the wait).
        if case.return_stopped_clock_at.is_some() && !paused {
            v.state = "stopped".into();
            v.working_days_overdue = 0;
        }
        v
    });
    let overall_deadline = case.overall.map(|d| {
        let mut v = clock(d);
        if !case.overall_running() {
            v.state = "stopped".into();
            v.working_days_overdue = 0;
        }
        v
    });
    let acknowledgement_deadline = case.acknowledgement.filter(|_| case.acknowledgement_running()).map(clock);
    let hidden =
        principal.role == domain::Role::Handler && case.accused_unit.is_some() && case.accused_unit == principal.unit;
    let mut complainant =
        ComplainantView { anonymous: case.complainant.anonymous, name: None, phone: None, hidden, erased: false };
    if !hidden && let Some(sealed) = &case.complainant.sealed {
        let opened = match opened {
            Some(o) => o,
            None => state.vault.open(&state.pool, sealed).await?,
        };
        match opened {
            Opened::Clear(data) => {
                complainant.name = data.name.as_deref().map(domain::personal::mask_name);
                complainant.phone = data.phone.as_deref().map(domain::personal::mask_phone);
            }
            Opened::Erased => complainant.erased = true,
        }
    }
    let proposed_route = if case.status == domain::Status::Received && case.duplicate_of.is_none() {
        proposed_route(state, case).await?.map(|r| RouteView {
            unit_id: r.unit_id.as_uuid(),
            tier: r.tier.into(),
            source: match r.source {
                infra::reference::RouteSource::VillageRule => "village_rule",
                infra::reference::RouteSource::CategoryRule => "category_rule",
                infra::reference::RouteSource::CategoryDefault => "category_default",
            }
            .into(),
        })
    } else {
        None
    };
    Ok(CaseView {
        id: case.id.as_uuid(),
        receipt_code: case.receipt_code.as_str().to_owned(),
        version: case.version,
        status: case.status.into(),
        kind: case.kind.into(),
        channel: case.channel.into(),
        title: case.title.as_str().to_owned(),
        description: case.description.as_str().to_owned(),
        category_id: case.category.map(|c| c.as_uuid()),
        village_id: case.village.map(|u| u.as_uuid()),
        accused_unit_id: case.accused_unit.map(|u| u.as_uuid()),
        urgency: case.urgency.into(),
        received_at: case.received_at,
        round: case.round,
        unit_id: case.unit.map(|u| u.as_uuid()),
        tier: case.tier.map(Into::into),
        proposed_route,
        co_units: case
            .co_units
            .iter()
            .map(|c| CoUnitView { unit_id: c.unit.as_uuid(), signed_at: c.signed_at, contributed_at: c.contributed_at })
            .collect(),
        deadline,
        overall_deadline,
        acknowledgement_deadline,
        accepted_at: case.accepted_at,
        acknowledged_at: case.acknowledged_at,
        signed_at: case.signed_at,
        return_request: case.return_request.as_ref().map(|r| r.as_str().to_owned()),
        returns: case.returns,
        extension_request: case
            .extension_request
            .as_ref()
            .map(|r| ExtensionRequestView { due_at: r.due_at, reason: r.reason.as_str().to_owned() }),
        paused: case.paused.as_ref().map(|p| PauseView { since: p.since, reason: p.reason.as_str().to_owned() }),
        follow_up_attempts: case.follow_up_attempts,
        dissatisfied_count: case.dissatisfied_count,
        extensions_this_round: case.extensions_this_round,
        assigned_at: case.assigned_at,
        handling: case.handling.as_ref().map(|h| HandlingView {
            outcome: h.outcome.into(),
            result: h.result.as_str().into(),
            at: h.at,
        }),
        feedback: case.feedback.as_ref().map(|h| FeedbackView {
            method: h.method.into(),
            content: h.content.as_str().into(),
            at: h.at,
        }),
        satisfaction: case.satisfaction.as_ref().map(|s| SatisfactionView {
            rating: s.rating.into(),
            comment: s.comment.as_ref().map(|c| c.as_str().to_owned()),
            at: s.at,
            method: s.method.map(Into::into),
            collected_by: s.collected_by.as_ref().map(|a| a.as_str().to_owned()),
            solved: s.solved,
        }),
        ever_fed_back: case.ever_fed_back,
        rejection_reason: case.rejection.as_ref().map(|r| r.as_str().to_owned()),
        rejection_code: case.rejection_code.map(Into::into),
        referred_to: case.referred_to.as_ref().map(|t| t.as_str().to_owned()),
        escalated: case.escalation.is_some(),
        escalation_reason: case.escalation.as_ref().map(|r| r.as_str().to_owned()),
        duplicate_of: case.duplicate_of.map(|c| c.as_uuid()),
        campaign_id: case.campaign.map(|c| c.campaign.as_uuid()),
        campaign_phase: case.campaign.map(|c| match c.phase {
            domain::records::Phase::Preparation => crate::routes::campaigns::PhaseName::Preparation,
            domain::records::Phase::Implementation => crate::routes::campaigns::PhaseName::Implementation,
            domain::records::Phase::Summary => crate::routes::campaigns::PhaseName::Summary,
        }),
        source: case.source.as_ref().map(|s| CaseSourceView {
            source_type: match s.source_type {
                domain::records::SourceType::Meeting => crate::routes::records::SourceTypeName::Meeting,
                domain::records::SourceType::Visit => crate::routes::records::SourceTypeName::Visit,
                domain::records::SourceType::CardBatch => crate::routes::records::SourceTypeName::CardBatch,
                domain::records::SourceType::Survey => crate::routes::records::SourceTypeName::Survey,
            },
            record_id: s.record.as_uuid(),
            item: s.item.clone(),
        }),
        notes: case.notes,
        closed_at: case.closed_at,
        withdrawal_reason: case.withdrawal.as_ref().map(|r| r.as_str().to_owned()),
        location: case.location.as_ref().map(|l| LocationView {
            address: l.address.as_ref().map(|a| a.as_str().to_owned()),
            lat: l.coordinates.as_ref().map(domain::Coordinates::lat_degrees),
            long: l.coordinates.as_ref().map(domain::Coordinates::long_degrees),
        }),
        questions_asked: u32::try_from(case.questions.len()).unwrap_or(u32::MAX),
        questions_answered: u32::try_from(case.questions.iter().filter(|q| q.answered_at.is_some()).count())
            .unwrap_or(u32::MAX),
        complainant,
    })
}

/// Converts the body of a command endpoint into the domain command, collecting field errors.
pub fn reason(field: &str, s: &str) -> Result<Reason, ApiError> {
    Reason::parse(s)
        .map_err(|e| ApiError::Validation(vec![FieldError { field: field.into(), message: e.message.into() }]))
}

/// Converts free text, collecting field errors.
pub fn text(field: &str, s: &str) -> Result<Text, ApiError> {
    Text::parse(s)
        .map_err(|e| ApiError::Validation(vec![FieldError { field: field.into(), message: e.message.into() }]))
}

/// Converts optional free text.
pub fn opt_text(field: &str, s: Option<&str>) -> Result<Option<Text>, ApiError> {
    s.map(|s| text(field, s)).transpose()
}

/// The case as it was at a moment or a version (replayed from the log), or 404.
pub async fn get_as_of(
    state: &AppState,
    principal: &Principal,
    case_id: CaseId,
    as_of: Option<DateTime<Utc>>,
    version: Option<u32>,
) -> Result<CaseView, ApiError> {
    let scope = principal.require(Action::ReadCase)?;
    // Scope is judged on the case as it is now: a handler whose unit no longer holds it does
    // not see its past either.
    let current = state.store.load(case_id).await?;
    in_scope(principal, scope, &current)?;
    let loaded = state.store.load_until(case_id, version, as_of).await?;
    let case = loaded.case.as_ref().ok_or(ApiError::NotFound("case"))?;
    if version.is_some_and(|v| v > current.version()) {
        return Err(ApiError::NotFound("case version"));
    }
    view(state, principal, case, as_of.unwrap_or_else(now)).await
}

/// Recomputes a case's chain (auditors and supervisors).
pub async fn verify_case(
    state: &AppState,
    principal: &Principal,
    case_id: CaseId,
) -> Result<ChainVerification, ApiError> {
    principal.require(Action::ReadIntegrity)?;
    let check = state.store.verify_case(case_id).await?;
    if check.events == 0 {
        return Err(ApiError::NotFound("case"));
    }
    Ok(chain_view(case_id.as_uuid(), check))
}

/// A chain check as the API shows it (a case's or a campaign record's).
pub fn chain_view(stream: Uuid, check: infra::store::ChainCheck) -> ChainVerification {
    ChainVerification {
        case_id: stream,
        status: if check.ok() { "ok".into() } else { "tampered".into() },
        events: check.events,
        head_hash: hex::encode(check.head_hash),
        first_bad_version: check.first_bad_version,
        problem: check.problem,
    }
}

/// Reveals the complainant's identity to a permitted role, after recording the access (who,
/// why, when) in the case's history: no look without a trace.
pub async fn reveal(
    state: &AppState,
    meta: &RequestMeta,
    case_id: CaseId,
    purpose_code: domain::RevealPurpose,
    purpose: Reason,
    body: &impl serde::Serialize,
) -> Result<RevealedComplainant, ApiError> {
    let command = Command::RevealComplainant { purpose_code, purpose };
    let view = execute(state, meta, case_id, Action::RevealComplainant, command, body).await?;
    let loaded = state.store.load_until(case_id, Some(view.version), None).await?;
    // A retry with the same key answers under the access it recorded, but only while a client
    // may still be retrying a lost answer: later, the key would be a way to look again unseen.
    if loaded.events.last().is_some_and(|access| now() - access.recorded_at > state.reveal_replay) {
        return Err(ApiError::RevealReplayExpired);
    }
    let sealed =
        loaded.case.as_ref().and_then(|c| c.complainant.sealed.clone()).ok_or(ApiError::NotFound("personal data"))?;
    match state.vault.open(&state.pool, &sealed).await? {
        Opened::Clear(d) => Ok(RevealedComplainant {
            name: d.name,
            phone: d.phone,
            id_number: d.id_number,
            access_version: view.version,
        }),
        Opened::Erased => Err(ApiError::Domain(domain::DomainError::NoPersonalData)),
    }
}

/// Erases the complainant's personal data: shreds their key (the clear values are gone from
/// everywhere at once), then records a redaction marker in the history. The log is never
/// rewritten, so every chain still verifies.
pub async fn erase(state: &AppState, meta: &RequestMeta, case_id: CaseId) -> Result<u32, ApiError> {
    let scope = meta.principal.require(Action::ErasePersonalData)?;
    // A retry with the same key answers the first erasure; a stale If-Match shreds nothing.
    let idem = meta.idempotency("erase", Some(case_id), &"erase");
    if let Some(view) = replay_idempotent(state, meta, scope, idem.as_ref(), Some(case_id)).await? {
        return Ok(view.version);
    }
    let loaded = state.store.load(case_id).await?;
    let case = in_scope(&meta.principal, scope, &loaded)?;
    IfMatch::check(meta.if_match.as_ref(), case.version)?;
    let sealed = case.complainant.sealed.clone().ok_or(ApiError::Domain(domain::DomainError::NoPersonalData))?;
    state.vault.erase(&state.pool, sealed.subject).await?;
    // The caller may erase without being allowed to read the case: answer only the new version.
    Ok(execute(state, meta, case_id, Action::ErasePersonalData, Command::ErasePersonalData, &"erase").await?.version)
}

/// The service itself, acting on a rule of the trade (a recomputation, a re-route): recorded
/// in the history under this id, with the supervisor role.
fn system(id: &str) -> RequestMeta {
    RequestMeta {
        principal: Principal {
            id: domain::ActorId::parse(id).unwrap_or_else(|_| unreachable!("a fixed valid actor id")),
            role: domain::Role::Supervisor,
            unit: None,
            expires_at: i64::MAX,
        },
        request_id: None,
        idempotency_key: None,
        if_match: None,
    }
}

/// After the calendar of `years` is loaded or corrected: every open case with a working-day
/// clock it may move (counted on weekdays alone into a year not loaded, or running through one
/// of the years) is recomputed, each by an explicit `case.deadlines_recomputed` event (none
/// where nothing changes). Returns how many cases got one.
pub async fn recompute_calendar_deadlines(state: &AppState, years: &[i32]) -> Result<u64, ApiError> {
    let meta = system("system:calendar");
    let mut changed = 0;
    for id in state.ledger.cases_for_calendar(years).await? {
        let before = state.store.load(CaseId::from_uuid(id)).await?.version();
        let view =
            execute(state, &meta, CaseId::from_uuid(id), Action::RecomputeDeadlines, Command::RecomputeDeadlines, &id)
                .await?;
        if view.version != before {
            changed += 1;
        }
    }
    Ok(changed)
}

/// Deactivates a unit (by an admin). While it leads or co-handles open cases (assigned or
/// handled) it is refused with their list (409 `unit-holds-cases`), unless `reroute_to` names
/// the unit they go to. Every re-route is decided first (a recusal anywhere refuses the whole
/// deactivation, before anything is written); then the unit is deactivated, so that nothing new
/// is routed there, and the cases are re-routed, each by an event under the service's own actor
/// naming the admin. An assignment that raced the deactivation is caught by
/// [`return_cases_of_inactive_units`].
pub async fn deactivate_unit(
    state: &AppState,
    meta: &RequestMeta,
    unit: UnitId,
    reroute_to: Option<UnitId>,
) -> Result<infra::reference::Unit, ApiError> {
    let open = state.ledger.open_cases_of_unit(unit.as_uuid()).await?;
    let plan = match (open.is_empty(), reroute_to) {
        (true, _) => Vec::new(),
        (false, None) => return Err(ApiError::UnitHoldsCases(open.iter().map(|(id, _, _)| *id).collect())),
        (false, Some(target)) => {
            if target == unit {
                return Err(ApiError::Validation(vec![FieldError {
                    field: "reroute_to".into(),
                    message: "must be another unit".into(),
                }]));
            }
            check_unit(state, "reroute_to", target.as_uuid()).await?;
            let reason = Reason::parse(format!("承办单位撤销，改派 (deactivated by {})", meta.principal.id.as_str()))
                .unwrap_or_else(|_| unreachable!("an actor id is short"));
            let units = state.reference.unit_tree().await?;
            let calendar = state.reference.working_calendar().await?;
            let actor = system("system:deactivation").principal.actor();
            let mut plan = Vec::new();
            for (id, _, _) in &open {
                let case_id = CaseId::from_uuid(*id);
                let Some(case) = state.store.load(case_id).await?.case else { continue };
                let command = if case.unit == Some(unit) {
                    Command::Transfer { reason: reason.clone(), to_unit: Some(target) }
                } else {
                    let taken = case.unit == Some(target) || case.co_units.iter().any(|c| c.unit == target);
                    Command::ReplaceCoUnit { from: unit, to: (!taken).then_some(target), reason: reason.clone() }
                };
                let policy = state.reference.policy_for(case.category).await?;
                let linked: Vec<UnitId> = state
                    .ledger
                    .accused_by_duplicates_of(case_id.as_uuid())
                    .await?
                    .into_iter()
                    .map(UnitId::from_uuid)
                    .collect();
                let ctx = Context {
                    now: now(),
                    actor: &actor,
                    calendar: &calendar,
                    policy: &policy,
                    units: &units,
                    linked_accused: &linked,
                };
                decide(Some(&case), &command, &ctx)?;
                plan.push((case_id, command));
            }
            plan
        }
    };
    let deactivated = state.reference.deactivate_unit(unit).await?.ok_or(ApiError::NotFound("unit"))?;
    let by = RequestMeta { request_id: meta.request_id.clone(), ..system("system:deactivation") };
    for (case_id, command) in plan {
        let action = if matches!(command, Command::Transfer { .. }) { Action::Transfer } else { Action::Assign };
        if let Err(e) = execute(state, &by, case_id, action, command, &("deactivate", case_id.as_uuid())).await {
            // The case moved meanwhile; the sweep returns it to dispatch if it still needs it.
            tracing::warn!(case.id = %case_id.as_uuid(), error = %e, "re-routing after a deactivation failed");
        }
    }
    return_cases_of_inactive_units(state).await?;
    Ok(deactivated)
}

/// Returns to dispatch every open case still led by a deactivated unit, and drops deactivated
/// co-units, each by an event (an assignment that raced a deactivation, or a deactivation made
/// by hand in the database). Runs after every deactivation and in the background. Returns how
/// many cases it moved.
pub async fn return_cases_of_inactive_units(state: &AppState) -> Result<u64, ApiError> {
    let meta = system("system:deactivation");
    let reason = Reason::parse("承办单位已撤销，退回分派 (the unit was deactivated)")
        .unwrap_or_else(|_| unreachable!("a fixed valid reason"));
    let mut moved = 0;
    for (id, lead, co) in state.ledger.cases_at_inactive_units().await? {
        let case_id = CaseId::from_uuid(id);
        let mut commands: Vec<(Action, Command)> = co
            .into_iter()
            .map(|u| {
                let c = Command::ReplaceCoUnit { from: UnitId::from_uuid(u), to: None, reason: reason.clone() };
                (Action::Assign, c)
            })
            .collect();
        if lead.is_some() {
            commands.push((Action::Transfer, Command::Transfer { reason: reason.clone(), to_unit: None }));
        }
        for (action, command) in commands {
            match execute(state, &meta, case_id, action, command, &("sweep", id)).await {
                Ok(_) => moved += 1,
                Err(e) => tracing::warn!(case.id = %id, error = %e, "returning a case of a deactivated unit failed"),
            }
        }
    }
    Ok(moved)
}

/// A page of the integrator feed as the caller may see it: handlers only their unit's cases,
/// with the complainant stripped from payloads. The cursor advances past filtered-out events.
pub async fn feed(
    state: &AppState,
    principal: &Principal,
    after: infra::FeedCursor,
    limit: i64,
) -> Result<FeedPage, ApiError> {
    let scope = principal.require(Action::ReadFeed)?;
    let events = state.store.read_feed(after, limit).await?;
    let next = events.last().map_or(after, infra::FeedCursor::after);
    let allowed: Option<std::collections::HashSet<Uuid>> = match (scope, principal.unit) {
        (Scope::All, _) => None,
        (Scope::OwnUnit, unit) => {
            let ids: Vec<Uuid> = events.iter().map(|e| e.case_id).collect();
            Some(state.ledger.cases_of_unit(&ids, unit.map(|u| u.as_uuid())).await?.into_iter().collect())
        }
    };
    // An undercover visit's events reach only those who may read it before its disclosure.
    let hidden: std::collections::HashSet<Uuid> = if principal.require(Action::ReadRestrictedRecords).is_ok() {
        std::collections::HashSet::new()
    } else {
        let ids: Vec<Uuid> = events.iter().filter(|e| !e.is_case_event()).map(|e| e.case_id).collect();
        if ids.is_empty() {
            std::collections::HashSet::new()
        } else {
            infra::records::restricted_among(&state.pool, &ids).await?.into_iter().collect()
        }
    };
    let strip = principal.role == domain::Role::Handler;
    let events = events
        .iter()
        .filter(|e| allowed.as_ref().is_none_or(|a| a.contains(&e.case_id)))
        .filter(|e| !hidden.contains(&e.case_id))
        .map(|e| {
            let mut v = event_view(e);
            if strip && let Some(obj) = v.payload.as_object_mut() {
                obj.remove("complainant");
            }
            FeedEvent {
                feed_position: infra::FeedCursor::after(e).to_string(),
                case_id: e.case_id,
                stream_type: e.stream_type().to_owned(),
                event: v,
            }
        })
        .collect();
    Ok(FeedPage { events, next: next.to_string() })
}

/// Signs a checkpoint over what the integrity watch has checked: the watch is first brought up
/// to the feed's head, and the checkpoint covers the log up to the watch's cursor, never beyond.
/// `Ok(None)` when nothing was added (or another instance is signing).
///
/// Errors: [`ApiError::IntegrityAlarm`] (409) while the watch has found failures since the
/// service started; a checkpoint would vouch for them.
pub async fn checkpoint(
    state: &AppState,
    signer: &infra::integrity::Signer,
) -> Result<Option<infra::integrity::Checkpoint>, ApiError> {
    let mut status = state.watch.lock().await;
    loop {
        let before = status.events_checked;
        let (found, caught_up) = infra::watch::run_once(&state.pool, &mut status, 2000).await?;
        crate::background::report_watch(&found, status.events_checked - before);
        if caught_up {
            break;
        }
    }
    if status.failures_total > 0 {
        return Err(ApiError::IntegrityAlarm { failures: status.failures_total });
    }
    let until: infra::FeedCursor = status.cursor.parse().unwrap_or_default();
    drop(status);
    Ok(infra::integrity::make_checkpoint(&state.store, signer, Some(until)).await?)
}
