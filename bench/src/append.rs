//! Append throughput: Huiyin's store vs two raw INSERT baselines (the machine's limit: one table,
//! one index; and a table of the events' own shape: unique `(case_id, version)`, the feed index,
//! a computed chained hash) vs postgres-es (cqrs-es), at 1, 8 and 32 concurrent tasks; one event
//! per transaction, then ten. Every measurement runs in a fresh database (a copy of a migrated
//! template, then a checkpoint), the systems' order rotates between repetitions, and every value
//! is reported.

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
         CREATE TABLE shaped_events (position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, case_id uuid NOT NULL, \
           version integer NOT NULL CHECK (version > 0), event_type text NOT NULL CHECK (length(event_type) BETWEEN 1 AND 100), \
           schema_version smallint NOT NULL CHECK (schema_version > 0), payload jsonb NOT NULL, metadata jsonb NOT NULL, \
           occurred_at timestamptz NOT NULL, recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(), \
           tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(), prev_hash bytea NOT NULL CHECK (length(prev_hash) = 32), \
           hash bytea NOT NULL CHECK (length(hash) = 32), UNIQUE (case_id, version)); \
         CREATE INDEX shaped_events_feed_idx ON shaped_events (tx_id, position); \
         CREATE TABLE pes_events (aggregate_type text NOT NULL, aggregate_id text NOT NULL, sequence bigint CHECK (sequence >= 0) NOT NULL, \
           event_type text NOT NULL, event_version text NOT NULL, payload json NOT NULL, metadata json NOT NULL, \
           PRIMARY KEY (aggregate_type, aggregate_id, sequence)); \
         CREATE TABLE pes_snapshots (aggregate_type text NOT NULL, aggregate_id text NOT NULL, last_sequence bigint NOT NULL, \
           current_snapshot bigint NOT NULL, payload json NOT NULL, PRIMARY KEY (aggregate_type, aggregate_id)); \
         GRANT SELECT, INSERT ON raw_events, shaped_events, pes_events, pes_snapshots TO huiyin_app;",
    )
    .await
    .unwrap();
    (url_with(&base, "huiyin_app", name), owner)
}

/// Which system appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// Raw single-statement INSERT with tokio-postgres into a minimal table (one index, a
    /// constant hash): the machine's limit.
    Raw,
    /// Raw single-statement INSERT into a table of the events' shape (unique `(case_id, version)`,
    /// the feed index, the same checks), with the chained hash computed as Huiyin computes it.
    RawShaped,
    /// Huiyin's event store as it ships: concurrent appends coalesced (`EventStore::batched`).
    Huiyin,
    /// Huiyin's event store writing every append in its own transaction (`EventStore::new`).
    HuiyinOneByOne,
    /// postgres-es through cqrs-es's repository.
    Peer,
}

impl System {
    /// Every system, in the order of the first repetition.
    pub const ALL: [System; 5] = [Self::Raw, Self::RawShaped, Self::Huiyin, Self::HuiyinOneByOne, Self::Peer];

    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw INSERT, minimal table",
            Self::RawShaped => "raw INSERT, the events' shape",
            Self::Huiyin => "Huiyin EventStore::append, as it ships (coalesced)",
            Self::HuiyinOneByOne => "Huiyin, one transaction per append",
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

/// One task's stream: the case it appends to now, and how many events that case has left.
struct Stream {
    id: CaseId,
    /// The case as of its last append; `None` before the stream's first registration.
    case: Option<Case>,
    head: [u8; 32],
    /// postgres-es's sequence number of the case's last event.
    seq: usize,
    /// Events the case takes before the stream registers its next case ([`Workload::Cases`]).
    left: usize,
}

/// What the append benchmark writes (`HUIYIN_BENCH_APPEND_WORKLOAD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// The default: each task fills a case with [`EVENTS_PER_CASE`] events or more, `batch`
    /// to an append (a case's first append opens with its registration, the rest are notes),
    /// then registers the next case; every registration and note carries words its case has not
    /// had, so every append adds search terms, as a real case's few notes do. Every event counts.
    /// One event per append: a registration and five notes, in six appends; ten: one append of
    /// a registration and nine notes.
    Cases,
    /// `one-case`: each task appends to one case for the whole run (its first append opens
    /// with the registration), every note the same text. After the first note a note's ledger
    /// update changes no search term, fact or clock: the cheapest write Huiyin makes (the
    /// workload of the runs before 2026-12-03 09:00 UTC).
    OneCase,
}

/// Events a case takes in the [`Workload::Cases`] workload before its task registers the next:
/// about what a case's life appends (registered, accepted, assigned, handled, replied, closed).
pub const EVENTS_PER_CASE: usize = 6;

impl Workload {
    /// The workload the environment asks for (read once: appends are built on the load's hot
    /// path, beside the systems measured).
    pub fn current() -> Self {
        static W: std::sync::OnceLock<Workload> = std::sync::OnceLock::new();
        *W.get_or_init(|| match std::env::var("HUIYIN_BENCH_APPEND_WORKLOAD").as_deref() {
            Ok("one-case") => Workload::OneCase,
            Ok("cases") | Err(_) => Workload::Cases,
            Ok(other) => panic!("HUIYIN_BENCH_APPEND_WORKLOAD={other}: expected `cases` or `one-case`"),
        })
    }

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Cases => "cases",
            Workload::OneCase => "one-case",
        }
    }

    /// A sentence for the report's method.
    pub fn describe(self) -> String {
        match self {
            Workload::Cases => format!(
                "`{}`: each task fills a case with {EVENTS_PER_CASE} events or more, as many to an append as the \
                 row says, then registers the next case (one event per append: a registration and five notes in six \
                 appends; ten: one append of a registration and nine notes); every registration and note carries \
                 four characters its case has not had, so every append adds search terms; the tasks' cases start \
                 out of step. The registration is anonymous (no sealed complainant, so no subject key is written: \
                 the HTTP benchmark registers the full way)",
                self.name()
            ),
            Workload::OneCase => format!(
                "`{}`: each task appends to one case for the whole run, every note the same text (after the first \
                 note, the cheapest write Huiyin makes)",
                self.name()
            ),
        }
    }
}

/// Four CJK characters from the Unified Ideographs block, new each call (a counter stepped by a
/// prime), so the text they end adds search terms to its case.
fn new_words() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ch = |i: u32| char::from_u32(0x4E00 + (k.wrapping_mul(4).wrapping_add(i).wrapping_mul(7919)) % 20_000).unwrap();
    [ch(0), ch(1), ch(2), ch(3)].into_iter().collect()
}

fn metadata(actor: &str, role: &str) -> Metadata {
    Metadata {
        actor_id: actor.into(),
        actor_role: role.into(),
        request_id: None,
        idempotency_key: None,
        correlation_id: None,
    }
}

fn note_events(case: &Case, n: usize, workload: Workload) -> (Vec<NewEvent>, Case) {
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
        let text = match workload {
            Workload::Cases => format!("已电话联系反映人，约定周三上门核实{}。", new_words()),
            Workload::OneCase => "已电话联系反映人，约定周三上门核实情况。".to_owned(),
        };
        let cmd = Command::AddNote { text: domain::Text::parse(&text).unwrap() };
        for e in domain::decide(Some(&state), &cmd, &ctx).unwrap() {
            state = domain::evolve(Some(state), case.id, &e, now).unwrap();
            out.push(NewEvent { event: e, occurred_at: now, metadata: metadata("bench-handler", "handler") });
        }
    }
    (out, state)
}

/// A new case's registration (one event) and the case it makes.
fn registration_events(id: CaseId, workload: Workload) -> (Vec<NewEvent>, Case) {
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
    let description = match workload {
        Workload::Cases => format!("村口路灯损坏三个月无人修{}", new_words()),
        Workload::OneCase => "村口路灯损坏三个月无人修".to_owned(),
    };
    let reg = domain::Registration {
        id,
        channel: domain::Channel::Phone,
        kind: domain::CaseKind::Complaint,
        title: domain::Title::parse("村口路灯损坏").unwrap(),
        description: domain::Description::parse(&description).unwrap(),
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
    let mut case = None;
    for e in &events {
        case = Some(domain::evolve(case, id, e, now).unwrap());
    }
    let new = events
        .into_iter()
        .map(|event| NewEvent { event, occurred_at: now, metadata: metadata("bench-clerk", "clerk") })
        .collect();
    (new, case.expect("a registration makes at least one event"))
}

impl Stream {
    /// The `k`-th task's stream. Its first case takes fewer events by `k` (modulo the case's
    /// length), so the tasks' registrations do not fall together.
    fn new(k: usize) -> Self {
        let mut s = Self::empty();
        s.left = EVENTS_PER_CASE - k % EVENTS_PER_CASE;
        s
    }

    fn empty() -> Self {
        Stream { id: CaseId::from_uuid(uuid::Uuid::new_v4()), case: None, head: infra::hash::GENESIS, seq: 0, left: 0 }
    }

    /// The next append: `batch` events, opening with a new case's registration when the stream
    /// has no case yet or its case has taken its events, else notes. Returns the events, the
    /// version they follow and the case after them.
    fn next(&mut self, batch: usize, workload: Workload) -> (Vec<NewEvent>, u32, Case) {
        let batch = batch.max(1);
        let (events, expected, case) = match &self.case {
            Some(case) if workload == Workload::OneCase || self.left > 0 => {
                let (events, after) = note_events(case, batch, workload);
                (events, case.version, after)
            }
            _ => {
                let left = if self.case.is_none() { self.left.max(1) } else { EVENTS_PER_CASE };
                *self = Stream::empty();
                self.left = left;
                let (mut events, registered) = registration_events(self.id, workload);
                let (notes, after) = note_events(&registered, batch - 1, workload);
                events.extend(notes);
                (events, 0, after)
            }
        };
        self.left = self.left.saturating_sub(events.len());
        (events, expected, case)
    }
}

/// Each event's previous and own hash, chained from the stream's head as Huiyin chains them.
fn chain(s: &Stream, expected: u32, events: &[NewEvent]) -> Vec<([u8; 32], [u8; 32])> {
    let mut prev = s.head;
    let mut out = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let payload = e.event.payload();
        let meta = serde_json::to_value(&e.metadata).unwrap();
        let hash = infra::hash::event_hash(&infra::hash::HashInput {
            case_id: s.id.as_uuid(),
            version: expected + 1 + i as u32,
            event_type: e.event.event_type(),
            schema_version: e.event.schema_version(),
            occurred_at: domain::truncate_to_micros(e.occurred_at),
            payload: &payload,
            metadata: &meta,
            prev_hash: &prev,
        });
        out.push((prev, hash));
        prev = hash;
    }
    out
}

/// Appends the stream's next events through `sys`; how many events it appended.
async fn append_once(sys: System, setup: &Setup, s: &mut Stream, n: usize, workload: Workload) -> usize {
    let (events, expected, after) = s.next(n, workload);
    match sys {
        System::Huiyin | System::HuiyinOneByOne => {
            let store = if sys == System::Huiyin { &setup.batched } else { &setup.store };
            // The new head comes back with the outcome (the store hashed the events once).
            match store.append(s.id, expected, s.head, &events, None, &after).await.unwrap() {
                infra::store::AppendOutcome::Appended { last_hash, .. } => s.head = last_hash,
                infra::store::AppendOutcome::Duplicate { .. } => unreachable!("the benchmark sends no idempotency key"),
            }
        }
        System::RawShaped => {
            let client = setup.pool.get().await.unwrap();
            let hashes = chain(s, expected, &events);
            let mut sql = String::from(
                "INSERT INTO shaped_events (case_id, version, event_type, schema_version, payload, metadata, occurred_at, \
                 prev_hash, hash) VALUES ",
            );
            let mut params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = Vec::new();
            for (i, (e, (prev, hash))) in events.iter().zip(&hashes).enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                let b = params.len();
                let cols: Vec<String> = (1..=9).map(|k| format!("${}", b + k)).collect();
                sql.push_str(&format!("({})", cols.join(", ")));
                params.push(Box::new(s.id.as_uuid()));
                params.push(Box::new((expected + 1 + i as u32) as i32));
                params.push(Box::new(e.event.event_type()));
                params.push(Box::new(e.event.schema_version() as i16));
                params.push(Box::new(e.event.payload()));
                params.push(Box::new(serde_json::to_value(&e.metadata).unwrap()));
                params.push(Box::new(e.occurred_at));
                params.push(Box::new(prev.to_vec()));
                params.push(Box::new(hash.to_vec()));
            }
            let stmt = client.prepare_cached(&sql).await.unwrap();
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
            client.execute(&stmt, &refs).await.unwrap();
            s.head = hashes.last().map_or(s.head, |(_, h)| *h);
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
                params.push(Box::new((expected + 1 + i as u32) as i32));
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
                        e.event.event_type().into(),
                        "1".into(),
                        e.event.payload(),
                        serde_json::to_value(&e.metadata).unwrap(),
                    )
                })
                .collect();
            setup.peer.persist::<PeerCase>(&serialized, None).await.unwrap();
        }
    }
    let appended = events.len();
    s.case = Some(after);
    appended
}

/// Appends per second (events per second when `batch` > 1) for one system at one concurrency in
/// the database `setup` opens: a warm-up of half a window, then one timed window.
async fn measure(sys: System, setup: Arc<Setup>, tasks: usize, batch: usize, window: Duration) -> f64 {
    measure_timed(sys, setup, tasks, batch, window, None).await
}

/// [`measure`], telling `timed` (when given) the moment the timed window starts.
async fn measure_timed(
    sys: System,
    setup: Arc<Setup>,
    tasks: usize,
    batch: usize,
    window: Duration,
    timed: Option<&tokio::sync::Notify>,
) -> f64 {
    let workload = Workload::current();
    let streams: Vec<Stream> = (0..tasks).map(Stream::new).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for mut s in streams {
        let (setup, stop, count) = (setup.clone(), stop.clone(), count.clone());
        handles.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = append_once(sys, &setup, &mut s, batch, workload).await;
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(window / 2).await;
    let (n0, t) = (count.load(Ordering::Relaxed), Instant::now());
    if let Some(timed) = timed {
        timed.notify_one();
    }
    tokio::time::sleep(window).await;
    let n = count.load(Ordering::Relaxed) - n0;
    let secs = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.unwrap();
    }
    n as f64 / secs
}

/// One cell's figures: every repetition's value, in the order measured.
#[derive(Debug, Clone)]
pub struct Cell {
    pub system: System,
    pub tasks: usize,
    pub batch: usize,
    pub values: Vec<f64>,
}

impl Cell {
    /// Median, min and max of the values.
    pub fn median(&self) -> (f64, f64, f64) {
        median_spread(&self.values)
    }
}

/// The run's results, and the server settings each system's connections ran with.
pub struct Results {
    pub cells: Vec<Cell>,
    /// `(pool, settings)`: Huiyin's and the raw baselines' pool, and postgres-es's (sqlx) pool.
    pub settings: Vec<(&'static str, String)>,
    /// Events per second one task builds without writing them ([`generator_rate`]).
    pub generator: f64,
}

const TEMPLATE: &str = "huiyin_bench_append_tpl";
const CELL_DB: &str = "huiyin_bench_append";

/// The settings that decide an append's cost, as a connection of `pool` sees them.
const SETTINGS_SQL: &str = "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings \
     WHERE name IN ('synchronous_commit', 'fsync', 'full_page_writes', 'wal_level', 'wal_compression', 'commit_delay', \
     'shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'jit', 'max_connections')";

/// The settings of [`SETTINGS_SQL`] as a connection of Huiyin's pool (`infra::DbSettings`, which
/// pins the session's own settings as the service does) on `url` sees them.
pub async fn pool_settings(url: &str) -> String {
    let pool = infra::DbSettings::new(url.to_owned()).pool().unwrap();
    let c = pool.get().await.unwrap();
    c.query_one(SETTINGS_SQL, &[]).await.unwrap().get(0)
}

/// A fresh copy of the template (retried while the template's last connections close), checkpointed.
async fn fresh_cell() -> String {
    let base = base_url();
    let admin = connect(&url_with(&base, "postgres", "postgres")).await;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {CELL_DB} WITH (FORCE)")).await.unwrap();
    let mut tries = 0;
    while let Err(e) =
        admin.batch_execute(&format!("CREATE DATABASE {CELL_DB} TEMPLATE {TEMPLATE} OWNER huiyin_owner")).await
    {
        tries += 1;
        assert!(tries < 50, "bench: cannot copy the append template: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    admin.batch_execute("CHECKPOINT").await.unwrap();
    url_with(&base, "huiyin_app", CELL_DB)
}

async fn open(app_url: &str) -> (Setup, sqlx::PgPool) {
    let mut settings = infra::DbSettings::new(app_url.to_owned());
    settings.pool_size = 40;
    let pool = settings.pool().unwrap();
    let peer_pool = sqlx_pool(app_url).await;
    let setup = Setup {
        store: EventStore::new(pool.clone()),
        batched: EventStore::batched(pool.clone()),
        pool,
        peer: Arc::new(
            postgres_es::PostgresEventRepository::new(peer_pool.clone()).with_tables("pes_events", "pes_snapshots"),
        ),
    };
    (setup, peer_pool)
}

/// Runs every combination `reps` times. Each measurement gets a fresh database; within a
/// repetition the cells run batch by batch and concurrency by concurrency, and the systems'
/// order rotates by one place from one repetition to the next.
pub async fn run(concurrency: &[usize], batches: &[usize], window: Duration, reps: usize) -> Results {
    let (_, owner) = fresh_db(TEMPLATE).await;
    if let Some(sql) = template_sql() {
        eprintln!("bench: HUIYIN_BENCH_TEMPLATE_SQL on the append cells' template: {sql}");
        connect(&owner).await.batch_execute(&sql).await.unwrap();
    }
    let generator = generator_rate(Duration::from_secs(1));
    let mut cells: Vec<Cell> = Vec::new();
    for &batch in batches {
        for &tasks in concurrency {
            for system in System::ALL {
                cells.push(Cell { system, tasks, batch, values: Vec::new() });
            }
        }
    }
    let mut settings = Vec::new();
    for rep in 0..reps {
        for &batch in batches {
            for &tasks in concurrency {
                for k in 0..System::ALL.len() {
                    let sys = System::ALL[(k + rep) % System::ALL.len()];
                    let url = fresh_cell().await;
                    let (setup, peer_pool) = open(&url).await;
                    if settings.is_empty() {
                        let c = setup.pool.get().await.unwrap();
                        settings.push((
                            "Huiyin and raw (deadpool-postgres)",
                            c.query_one(SETTINGS_SQL, &[]).await.unwrap().get(0),
                        ));
                        let peer: (String,) = sqlx::query_as(SETTINGS_SQL).fetch_one(&peer_pool).await.unwrap();
                        settings.push(("postgres-es (sqlx)", peer.0));
                    }
                    let setup = Arc::new(setup);
                    let r = measure(sys, setup.clone(), tasks, batch, window).await;
                    eprintln!(
                        "bench: append rep {} {} × {tasks} tasks × {batch} events: {r:.0}/s",
                        rep + 1,
                        sys.name()
                    );
                    setup.pool.close();
                    peer_pool.close().await;
                    cells
                        .iter_mut()
                        .find(|c| c.system == sys && c.tasks == tasks && c.batch == batch)
                        .unwrap()
                        .values
                        .push(r);
                }
            }
        }
    }
    Results { cells, settings, generator }
}

/// `HUIYIN_BENCH_TEMPLATE_SQL`: an experiment's change to the schema (what a dropped index or
/// another setting would save), run on the append cells' template after its migrations, so on
/// every cell's database; the Appends section names it. `huiyin-bench all` refuses it.
pub fn template_sql() -> Option<String> {
    std::env::var("HUIYIN_BENCH_TEMPLATE_SQL").ok().filter(|s| !s.trim().is_empty())
}

/// Events per second that one task builds without writing them (the decisions, the folds, the
/// payloads and the new words of the workload): the load's own cost, which every system's
/// measurement pays in the bench's process beside it.
fn generator_rate(window: Duration) -> f64 {
    let workload = Workload::current();
    let mut s = Stream::new(0);
    let (mut n, t) = (0usize, Instant::now());
    while t.elapsed() < window {
        let (events, _, after) = s.next(1, workload);
        // The bytes every system stores: the payload and the metadata as JSON.
        for e in &events {
            std::hint::black_box((e.event.payload(), serde_json::to_value(&e.metadata).unwrap()));
        }
        n += events.len();
        s.case = Some(after);
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Huiyin's appends (one event each, from `tasks` tasks, as the benchmark's cells append) in a
/// fresh database, while `watch` runs beside them over the timed window (it starts when that
/// window does, after the streams' setup and a warm-up of half a window, and is given the
/// window's length); appends per second in that window, and what `watch` returned.
pub async fn huiyin_while<W, Fut, T>(tasks: usize, window: Duration, watch: W) -> (f64, T)
where
    W: FnOnce(Duration) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    fresh_db(TEMPLATE).await;
    let url = fresh_cell().await;
    let (setup, peer_pool) = open(&url).await;
    let setup = Arc::new(setup);
    let timed = tokio::sync::Notify::new();
    let (rate, watched) =
        tokio::join!(measure_timed(System::Huiyin, setup.clone(), tasks, 1, window, Some(&timed)), async {
            timed.notified().await;
            watch(window).await
        });
    setup.pool.close();
    peer_pool.close().await;
    (rate, watched)
}

/// postgres-es's pool, pinned to the session settings Huiyin's connections use
/// (`synchronous_commit=on`, `jit=off`), so the two differ only in what they write.
async fn sqlx_pool(url: &str) -> sqlx::PgPool {
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let options = options.options([("synchronous_commit", "on"), ("jit", "off")]);
    sqlx::postgres::PgPoolOptions::new().max_connections(40).connect_with(options).await.unwrap()
}
