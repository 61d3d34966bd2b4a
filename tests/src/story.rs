//! A case written event by event at chosen times, through the domain and the store, as the
//! service would have written it had it run then (the KPIs and the supervision rules judge
//! clocks that only time runs out).

use chrono::{DateTime, Utc};
use domain::*;
use uuid::Uuid;

use crate::app::TestApp;

/// A time written as RFC 3339.
pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// One case and where its story has got to.
pub struct Story {
    pub id: CaseId,
    pub state: Option<Case>,
    head: [u8; 32],
    store: infra::EventStore,
}

impl Story {
    /// Registers a case received at `at` (RFC 3339).
    pub async fn register(app: &TestApp, at: &str, identified: bool) -> Self {
        Self::register_at(app, t(at), identified).await
    }

    /// Registers a case received at `at`.
    pub async fn register_at(app: &TestApp, at: DateTime<Utc>, identified: bool) -> Self {
        Self::register_with(app, at, |reg| reg.complainant.anonymous = !identified).await
    }

    /// Registers a case received at `at`, its registration (anonymous, fixtures' title) changed
    /// by `edit`.
    pub async fn register_with(app: &TestApp, at: DateTime<Utc>, edit: impl FnOnce(&mut Registration)) -> Self {
        let at = domain::truncate_to_micros(at);
        let id = CaseId::from_uuid(Uuid::new_v4());
        let mut reg = crate::fixtures::registration(id, at);
        edit(&mut reg);
        let mut s =
            Self { id, state: None, head: infra::hash::GENESIS, store: infra::EventStore::new(app.db.app_pool()) };
        s.run_at(Command::Register(Box::new(reg)), at).await;
        s
    }

    /// Decides `cmd` at `at` (RFC 3339) and appends its events.
    pub async fn run(&mut self, cmd: Command, at: &str) -> &mut Self {
        self.run_at(cmd, t(at)).await
    }

    /// Decides `cmd` at `at` (handlers sign for, ask to return and handle; supervisors do the
    /// rest) and appends its events recorded then.
    pub async fn run_at(&mut self, cmd: Command, at: DateTime<Utc>) -> &mut Self {
        let at = domain::truncate_to_micros(at);
        let handler = matches!(cmd, Command::SignFor | Command::RequestReturn { .. } | Command::Handle { .. });
        let unit = self.state.as_ref().and_then(|c| c.unit);
        let actor = Actor {
            id: ActorId::parse("kpi-test").unwrap(),
            role: if handler { Role::Handler } else { Role::Supervisor },
            unit: if handler { unit } else { None },
        };
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
        let events = decide(self.state.as_ref(), &cmd, &ctx).unwrap_or_else(|e| panic!("{cmd:?} at {at}: {e}"));
        let new = crate::fixtures::new_events(events, at, actor.role);
        let version = self.state.as_ref().map_or(0, |c| c.version);
        let mut next = self.state.clone();
        for e in &new {
            next = Some(evolve(next, self.id, &e.event, at).unwrap());
        }
        self.store.append(self.id, version, self.head, &new, None, next.as_ref().unwrap()).await.unwrap();
        self.head = self.store.load(self.id).await.unwrap().head_hash();
        self.state = next;
        self
    }
}
