//! Builders for commands and events used across the tests.

use chrono::{DateTime, Utc};
use domain::events::*;
use domain::*;
use infra::{Metadata, NewEvent};

pub fn actor(role: Role) -> Actor {
    Actor { id: ActorId::parse(format!("{}-test", role.as_str())).unwrap(), role, unit: None }
}

pub fn metadata(role: Role) -> Metadata {
    Metadata {
        actor_id: format!("{}-test", role.as_str()),
        actor_role: role.as_str().into(),
        request_id: None,
        idempotency_key: None,
        correlation_id: None,
    }
}

pub fn now() -> DateTime<Utc> {
    domain::truncate_to_micros(Utc::now())
}

pub fn registration(id: CaseId, at: DateTime<Utc>) -> Registration {
    Registration {
        id,
        channel: Channel::Symposium,
        kind: CaseKind::Complaint,
        title: Title::parse("村道路灯损坏无人修").unwrap(),
        description: Description::parse("座谈会上村民代表反映：村口路灯损坏三个月，多次反映无人处理。").unwrap(),
        category: None,
        village: None,
        accused_unit: None,
        urgency: Urgency::Normal,
        received_at: at,
        complainant: Complainant { anonymous: true, sealed: None, reachable_by: Vec::new() },
        campaign: None,
        source: None,
        location: None,
    }
}

/// Decides a command against a state with the default calendar and policy, as `role`.
pub fn decide_as(state: Option<&Case>, cmd: &Command, role: Role, at: DateTime<Utc>) -> Vec<CaseEvent> {
    let actor = actor(role);
    let calendar = WorkingCalendar::default();
    let policy = DeadlinePolicy::default();
    let ctx = Context {
        now: at,
        actor: &actor,
        calendar: &calendar,
        policy: &policy,
        units: &FlatUnits,
        linked_accused: &[],
    };
    decide(state, cmd, &ctx).unwrap()
}

pub fn new_events(events: Vec<CaseEvent>, at: DateTime<Utc>, role: Role) -> Vec<NewEvent> {
    events.into_iter().map(|event| NewEvent { event, occurred_at: at, metadata: metadata(role) }).collect()
}

pub fn note(text: &str) -> Command {
    Command::AddNote { text: Text::parse(text).unwrap() }
}

/// Appends events, folding them onto `before` to give the store the state after them (which the
/// store turns into the case's ledger row in the same transaction).
pub async fn append(
    store: &infra::EventStore,
    id: CaseId,
    before: Option<&Case>,
    expected: u32,
    prev: [u8; 32],
    events: &[NewEvent],
    idem: Option<&infra::IdempotencyKey>,
) -> Result<infra::AppendOutcome, infra::StoreError> {
    let mut state = before.cloned();
    for e in events {
        state = Some(evolve(state, id, &e.event, domain::truncate_to_micros(e.occurred_at)).unwrap());
    }
    store.append(id, expected, prev, events, idem, state.as_ref().unwrap()).await
}
