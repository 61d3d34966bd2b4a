//! Append throughput: Huiyin's store vs the raw INSERT limit vs postgres-es (cqrs-es), on one
//! server, at 1, 8 and 32 concurrent tasks; one event per transaction, then ten.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{PersistedEventRepository, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use domain::{Case, CaseId, Command, Role};
use infra::{EventStore, Metadata, NewEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::report::median_spread;
use crate::setup::{base_url, connect, url_with};

/// The peer's aggregate: only its persistence is exercised.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PeerCase;

/// The peer's event: the same payload bytes Huiyin appends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerEvent(Value);

impl DomainEvent for PeerEvent {
    fn event_type(&self) -> String {
        "case.note_added".into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

/// Never raised.
#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

impl Aggregate for PeerCase {
    const TYPE: &'static str = "case";
    type Command = ();
    type Event = PeerEvent;
    type Error = Never;
    type Services = ();
    async fn handle(&mut self, _: (), _: &(), _: &EventSink<Self>) -> Result<(), Never> {
        Ok(())
    }
    fn apply(&mut self, _: PeerEvent) {}
}

/// The database of the append benchmark, fresh every run.
pub async fn fresh_db(name: &str) -> (String, String) {
    let base = base_url();
    let admin = connect(&url_with(&base, "postgres", "postgres")).await;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name} OWNER huiyin_owner")).await.unwrap();
    let owner = url_with(&base, "huiyin_owner", name);
    infra::migrate::run(&infra::DbSettings::new(owner.clone())).await.unwrap();
    let c = connect(&owner).await;
    c.batch_execute(
        "CREATE TABLE raw_events (position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, case_id uuid NOT NULL, \
           version integer NOT NULL, event_type text NOT NULL, payload jsonb NOT NULL, metadata jsonb NOT NULL, \
           occurred_at timestamptz NOT NULL, hash bytea NOT NULL); \
         CREATE TABLE pes_events (aggregate_type text NOT NULL, aggregate_id text NOT NULL, sequence bigint CHECK (sequence >= 0) NOT NULL, \
           event_type text NOT NULL, event_version text NOT NULL, payload json NOT NULL, metadata json NOT NULL, \
           PRIMARY KEY (aggregate_type, aggregate_id, sequence)); \
         CREATE TABLE pes_snapshots (aggregate_type text NOT NULL, aggregate_id text NOT NULL, last_sequence bigint NOT NULL, \
           current_snapshot bigint NOT NULL, payload json NOT NULL, PRIMARY KEY (aggregate_type, aggregate_id)); \
         GRANT SELECT, INSERT ON raw_events, pes_events, pes_snapshots TO huiyin_app;",
    )
    .await
    .unwrap();
    (url_with(&base, "huiyin_app", name), owner)
}

/// Which system appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// Raw single-statement INSERT with tokio-postgres.
    Raw,
    /// Huiyin's event store.
    Huiyin,
    /// Huiyin's event store, coalescing concurrent appends.
    HuiyinBatched,
    /// postgres-es through cqrs-es's repository.
    Peer,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw INSERT (tokio-postgres)",
            Self::Huiyin => "Huiyin EventStore::append",
            Self::HuiyinBatched => "Huiyin, coalesced appends",
            Self::Peer => "postgres-es (cqrs-es)",
        }
    }
}

struct Setup {
    store: EventStore,
    batched: EventStore,
    pool: deadpool_postgres::Pool,
    peer: Arc<postgres_es::PostgresEventRepository>,
}

/// One task's stream: a registered case it keeps appending notes to.
struct Stream {
    id: CaseId,
    case: Case,
    head: [u8; 32],
    seq: usize,
}

fn note_events(case: &Case, n: usize) -> (Vec<NewEvent>, Case) {
    let actor = domain::Actor { id: domain::ActorId::parse("bench-handler").unwrap(), role: Role::Handler, unit: None };
    let cal = domain::WorkingCalendar::default();
    let pol = domain::DeadlinePolicy::default();
    let now = domain::truncate_to_micros(chrono::Utc::now());
    let ctx = domain::Context {
        now,
        actor: &actor,
        calendar: &cal,
        policy: &pol,
        units: &domain::FlatUnits,
        linked_accused: &[],
    };
    let mut state = case.clone();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let cmd = Command::AddNote {
            text: domain::Text::parse("已电话联系反映人，约定周三上门核实情况。").unwrap()
        };
        for e in domain::decide(Some(&state), &cmd, &ctx).unwrap() {
            state = domain::evolve(Some(state), case.id, &e, now).unwrap();
            out.push(NewEvent {
                event: e,
                occurred_at: now,
                metadata: Metadata {
                    actor_id: "bench-handler".into(),
                    actor_role: "handler".into(),
                    request_id: None,
                    idempotency_key: None,
                    correlation_id: None,
                },
            });
        }
    }
    (out, state)
}

async fn new_stream(setup: &Setup) -> Stream {
    let id = CaseId::from_uuid(uuid::Uuid::new_v4());
    let now = domain::truncate_to_micros(chrono::Utc::now());
    let actor = domain::Actor { id: domain::ActorId::parse("bench-clerk").unwrap(), role: Role::Clerk, unit: None };
    let cal = domain::WorkingCalendar::default();
    let pol = domain::DeadlinePolicy::default();
    let ctx = domain::Context {
        now,
        actor: &actor,
        calendar: &cal,
        policy: &pol,
        units: &domain::FlatUnits,
        linked_accused: &[],
    };
    let reg = domain::Registration {
        id,
        channel: domain::Channel::Phone,
        kind: domain::CaseKind::Complaint,
        title: domain::Title::parse("村口路灯损坏").unwrap(),
        description: domain::Description::parse("村口路灯损坏三个月无人修").unwrap(),
        category: None,
        village: None,
        accused_unit: None,
        urgency: domain::Urgency::Normal,
        received_at: now,
        complainant: domain::Complainant { anonymous: true, sealed: None, reachable_by: Vec::new() },
        campaign: None,
        source: None,
        location: None,
    };
    let events = domain::decide(None, &Command::Register(Box::new(reg)), &ctx).unwrap();
    let case = domain::evolve(None, id, &events[0], now).unwrap();
    let new: Vec<NewEvent> = events
        .into_iter()
        .map(|event| NewEvent {
            event,
            occurred_at: now,
            metadata: Metadata {
                actor_id: "bench-clerk".into(),
                actor_role: "clerk".into(),
                request_id: None,
                idempotency_key: None,
                correlation_id: None,
            },
        })
        .collect();
    setup.store.append(id, 0, infra::hash::GENESIS, &new, None, &case).await.unwrap();
    let head = setup.store.load(id).await.unwrap().head_hash();
    Stream { id, case, head, seq: 0 }
}

async fn append_once(sys: System, setup: &Setup, s: &mut Stream, n: usize) {
    let (events, after) = note_events(&s.case, n);
    match sys {
        System::Huiyin | System::HuiyinBatched => {
            let store = if sys == System::Huiyin { &setup.store } else { &setup.batched };
            store.append(s.id, s.case.version, s.head, &events, None, &after).await.unwrap();
            // The new head: recompute locally, as the service does from the events it decided.
            let mut prev = s.head;
            for (i, e) in events.iter().enumerate() {
                let payload = e.event.payload();
                let meta = serde_json::to_value(&e.metadata).unwrap();
                prev = infra::hash::event_hash(&infra::hash::HashInput {
                    case_id: s.id.as_uuid(),
                    version: s.case.version + 1 + i as u32,
                    event_type: e.event.event_type(),
                    schema_version: e.event.schema_version(),
                    occurred_at: domain::truncate_to_micros(e.occurred_at),
                    payload: &payload,
                    metadata: &meta,
                    prev_hash: &prev,
                });
            }
            s.head = prev;
            s.case = after;
        }
        System::Raw => {
            let client = setup.pool.get().await.unwrap();
            let mut sql = String::from(
                "INSERT INTO raw_events (case_id, version, event_type, payload, metadata, occurred_at, hash) VALUES ",
            );
            let mut params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = Vec::new();
            for (i, e) in events.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                let b = params.len();
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7
                ));
                params.push(Box::new(s.id.as_uuid()));
                params.push(Box::new((s.case.version + 1 + i as u32) as i32));
                params.push(Box::new(e.event.event_type()));
                params.push(Box::new(e.event.payload()));
                params.push(Box::new(serde_json::to_value(&e.metadata).unwrap()));
                params.push(Box::new(e.occurred_at));
                params.push(Box::new(vec![7u8; 32]));
            }
            let stmt = client.prepare_cached(&sql).await.unwrap();
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
            client.execute(&stmt, &refs).await.unwrap();
            s.case = after;
        }
        System::Peer => {
            let serialized: Vec<SerializedEvent> = events
                .iter()
                .map(|e| {
                    s.seq += 1;
                    SerializedEvent::new(
                        s.id.to_string(),
                        s.seq,
                        PeerCase::TYPE.to_string(),
                        "case.note_added".into(),
                        "1".into(),
                        e.event.payload(),
                        serde_json::to_value(&e.metadata).unwrap(),
                    )
                })
                .collect();
            setup.peer.persist::<PeerCase>(&serialized, None).await.unwrap();
            s.case = after;
        }
    }
}

/// Appends per second (events per second when `batch` > 1) for one system at one concurrency:
/// a warm-up, then `reps` timed windows; median and spread.
async fn measure(
    sys: System,
    setup: Arc<Setup>,
    tasks: usize,
    batch: usize,
    window: Duration,
    reps: usize,
) -> (f64, f64, f64) {
    let mut rates = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..tasks {
        streams.push(new_stream(&setup).await);
    }
    let mut streams: Vec<Option<Stream>> = streams.into_iter().map(Some).collect();
    for rep in 0..=reps {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for slot in streams.iter_mut() {
            let mut s = slot.take().unwrap();
            let (setup, stop, count) = (setup.clone(), stop.clone(), count.clone());
            handles.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    append_once(sys, &setup, &mut s, batch).await;
                    count.fetch_add(batch as u64, Ordering::Relaxed);
                }
                s
            }));
        }
        // The first window is the warm-up (half as long) and is not counted.
        let w = if rep == 0 { window / 2 } else { window };
        let t = Instant::now();
        tokio::time::sleep(w).await;
        let n = count.load(Ordering::Relaxed);
        let secs = t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for (slot, h) in streams.iter_mut().zip(handles) {
            *slot = Some(h.await.unwrap());
        }
        if rep > 0 {
            rates.push(n as f64 / secs);
        }
    }
    median_spread(&rates)
}

/// Results: (system, tasks, batch) → (median, min, max) per second.
pub type Results = Vec<(System, usize, usize, (f64, f64, f64))>;

/// Runs every combination.
pub async fn run(concurrency: &[usize], batches: &[usize], window: Duration, reps: usize) -> Results {
    let (app_url, _) = fresh_db("huiyin_bench_append").await;
    let mut settings = infra::DbSettings::new(app_url.clone());
    settings.pool_size = 40;
    let pool = settings.pool().unwrap();
    let peer_pool = sqlx_pool(&app_url).await;
    let setup = Arc::new(Setup {
        store: EventStore::new(pool.clone()),
        batched: EventStore::batched(pool.clone()),
        pool,
        peer: Arc::new(postgres_es::PostgresEventRepository::new(peer_pool).with_tables("pes_events", "pes_snapshots")),
    });
    let mut out = Vec::new();
    for &batch in batches {
        for &tasks in concurrency {
            for sys in [System::Raw, System::Huiyin, System::HuiyinBatched, System::Peer] {
                let r = measure(sys, setup.clone(), tasks, batch, window, reps).await;
                eprintln!(
                    "bench: append {} × {tasks} tasks × {batch} events: {:.0}/s ({:.0}–{:.0})",
                    sys.name(),
                    r.0,
                    r.1,
                    r.2
                );
                out.push((sys, tasks, batch, r));
            }
        }
    }
    out
}

async fn sqlx_pool(url: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new().max_connections(40).connect(url).await.unwrap()
}
