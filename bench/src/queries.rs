//! Query latencies through the real HTTP API, at several database sizes.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::report::{Goal, Summary, Verdict, machine, median_spread, summarize, write_section};
use crate::setup::{BENCH_KEK, BenchDb, connect, seeded};

pub const KINDS: &[&str] = &[
    "ledger page, filtered",
    "search (Chinese)",
    "overdue view",
    "stats (a year)",
    "one case's history",
    "KPIs (30 days, grouped)",
    "trends (weekly or monthly)",
    "summary report (JSON or HTML)",
];
/// Goals p95 in ms, per kind: the ledger issue's, then the analysis issue's (KPIs 200 ms, trends
/// 500 ms, the report 1 s). Issue 14 set the first four on the machine of 2026-11-28.
const GOALS: &[Option<f64>] =
    &[Some(20.0), Some(50.0), Some(20.0), Some(200.0), None, Some(200.0), Some(500.0), Some(1000.0)];
/// Passes over the sizes (10 k, 1 M, 10 k, 1 M, …): each size's requests are spread over them, so
/// a slow minute of the machine falls on both sizes; the ratio is the p95 over every request at
/// each size, and each pass's ratio is printed beside it for the spread.
pub const PASSES: usize = 3;
/// Unmeasured requests per kind before a server's first measured pass.
pub const WARM_UP: usize = 20;

/// What the requests are drawn from.
pub struct Pools {
    villages: Vec<String>,
    units: Vec<String>,
    cases: Vec<String>,
    campaigns: Vec<String>,
    /// The newest case's receipt: request dates are drawn relative to it, not to the clock, so a
    /// database seeded days ago is asked about the same spans of its data.
    anchor: chrono::DateTime<chrono::Utc>,
}

/// A `huiyin serve` process (stopped on drop) and a supervisor's token for it.
pub struct Server {
    process: crate::http::Server,
    client: reqwest::Client,
    token: String,
}

impl Server {
    fn base(&self) -> &str {
        &self.process.base
    }
}

async fn serve(db: &BenchDb) -> Server {
    serve_url(db.app().url.expose()).await
}

/// `huiyin serve` on `url` (the service's role; no migration, so a standby serves too) with the
/// shipped settings but a 30 s request and statement limit (a slow query shows in the p95
/// instead of failing) and no supervision rules (they would write while the queries run).
pub async fn serve_url(url: &str) -> Server {
    let process = crate::http::start_huiyin_with(
        url,
        None,
        &[
            ("HUIYIN_JWT_SECRET", crate::http::SECRET.to_owned()),
            ("HUIYIN_KEK", hex::encode(BENCH_KEK)),
            ("HUIYIN_KEK_ID", "bench-kek".to_owned()),
            ("HUIYIN_REQUEST_TIMEOUT_MS", "30000".to_owned()),
            ("HUIYIN_STATEMENT_TIMEOUT_MS", "30000".to_owned()),
            ("HUIYIN_SUPERVISION_INTERVAL_S", "0".to_owned()),
        ],
    )
    .await;
    let auth = api::auth::Authenticator::from_settings(&crate::http::auth_args(crate::http::SECRET)).unwrap();
    let token = auth.sign("bench-supervisor", domain::Role::Supervisor, None, chrono::Duration::hours(4)).unwrap();
    let server = Server { process, client: reqwest::Client::builder().no_proxy().build().unwrap(), token };
    await_watch(&server).await;
    server
}

/// Waits until the server's integrity watch has reached the feed's head. A server starts it
/// from the latest signed checkpoint, or from the log's start when there is none: until then it
/// verifies every later event at full speed, on the same two cores as the queries (minutes at
/// 1 M cases without a checkpoint), which is a start-up cost and not the queries' latency. The
/// seeded databases end with a checkpoint of their whole log, so this usually returns at once;
/// it guards a database whose checkpoint is missing or behind.
async fn await_watch(server: &Server) {
    let t = Instant::now();
    loop {
        assert!(t.elapsed() < Duration::from_secs(3600), "the integrity watch did not catch up within an hour");
        let status: serde_json::Value = server
            .client
            .get(format!("{}/api/v1/integrity/watch", server.base()))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !status["caught_up_at"].is_null() {
            eprintln!(
                "bench: the integrity watch caught up in {:.1} s ({} events checked)",
                t.elapsed().as_secs_f64(),
                status["events_checked"]
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The request of one kind (its path and `Accept`), drawn at random from realistic variations.
fn request(kind: usize, rng: &mut StdRng, pools: &Pools) -> (String, &'static str) {
    let Pools { villages, units, cases, campaigns, anchor } = pools;
    let anchor = *anchor;
    // One draw of a fixed width whatever the pool's length (`gen_range` may draw again, and the
    // pools' lengths differ between sizes): the same seed then gives both sizes the same variants.
    let pick = |rng: &mut StdRng, v: &[String]| v[(rng.r#gen::<u64>() % v.len() as u64) as usize].clone();
    let json = "application/json";
    match kind {
        0 => {
            let month = rng.gen_range(1..23);
            let from = (anchor - chrono::Duration::days(30 * month)).format("%Y-%m-%dT00:00:00Z");
            let to = (anchor - chrono::Duration::days(30 * (month - 1))).format("%Y-%m-%dT00:00:00Z");
            let filters = [
                "status=assigned".to_owned(),
                format!("village_id={}", pick(rng, villages)),
                "status=closed&channel=phone".to_owned(),
                format!("unit_id={}&sort=due_asc", pick(rng, units)),
                "urgency=urgent".to_owned(),
                "escalated=true".to_owned(),
                format!("received_from={from}&received_to={to}"),
                "overdue=true".to_owned(),
                format!("status=fed_back&village_id={}", pick(rng, villages)),
                "kind=suggestion&sort=received_asc".to_owned(),
            ];
            (format!("/api/v1/ledger?limit=20&{}", filters[rng.gen_range(0..filters.len())]), json)
        }
        1 => {
            let words = [
                "%E8%B7%AF%E7%81%AF",
                "%E4%BD%8E%E4%BF%9D",
                "%E4%B9%B1%E6%94%B6%E8%B4%B9",
                "%E5%AE%85%E5%9F%BA%E5%9C%B0",
                "%E9%A5%AE%E7%94%A8%E6%B0%B4",
                "%E5%81%B7%E7%9B%97",
                "%E8%A1%A5%E8%B4%B4",
                "%E6%8E%A8%E8%AF%BF",
            ];
            let w = words[rng.gen_range(0..words.len())];
            let path = if rng.gen_bool(0.5) {
                format!("/api/v1/ledger?limit=20&q={w}")
            } else {
                format!("/api/v1/ledger?limit=20&q={w}&village_id={}", pick(rng, villages))
            };
            (path, json)
        }
        2 => {
            let path = if rng.gen_bool(0.5) {
                "/api/v1/overdue".into()
            } else {
                format!("/api/v1/overdue?unit_id={}", pick(rng, units))
            };
            (path, json)
        }
        3 => (format!("/api/v1/stats?to={}", anchor.format("%Y-%m-%dT%H:%M:%SZ")), json),
        4 => (format!("/api/v1/cases/{}/events", pick(rng, cases)), json),
        5 => {
            // The 30 days before a random day of the generated two years, grouped every way.
            let days = rng.gen_range(0..700);
            let to = (anchor - chrono::Duration::days(days)).format("%Y-%m-%dT00:00:00Z");
            let group = ["total", "unit", "village", "category", "channel", "campaign"][rng.gen_range(0..6)];
            let filter = match rng.gen_range(0..4) {
                0 => format!("&village_id={}", pick(rng, villages)),
                1 => format!("&unit_id={}", pick(rng, units)),
                _ => String::new(),
            };
            (format!("/api/v1/kpis?to={to}&group_by={group}{filter}"), json)
        }
        6 => {
            let days = rng.gen_range(0..700);
            let to = (anchor - chrono::Duration::days(days)).format("%Y-%m-%dT00:00:00Z");
            let period = if rng.gen_bool(0.5) { "week" } else { "month" };
            (format!("/api/v1/trends?period={period}&to={to}"), json)
        }
        _ => {
            let village =
                if rng.gen_bool(0.5) { format!("&village_id={}", pick(rng, villages)) } else { String::new() };
            let accept = if rng.gen_bool(0.5) { json } else { "text/html" };
            (format!("/api/v1/reports/summary?campaign_id={}{village}", pick(rng, campaigns)), accept)
        }
    }
}

/// A request's variant: its path with every id, date and cursor replaced by `…`.
fn variant(path: &str) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let base: Vec<&str> =
        base.split('/').map(|seg| if uuid::Uuid::parse_str(seg).is_ok() { "…" } else { seg }).collect();
    let query: Vec<String> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if uuid::Uuid::parse_str(v).is_ok() || is_date(v) || k == "cursor" => {
                format!("{k}=…")
            }
            _ => kv.to_owned(),
        })
        .collect();
    format!("{}?{}", base.join("/"), query.join("&"))
}

/// `HUIYIN_BENCH_TRACE_SLOW_MS`: requests at least this slow are printed with their time and
/// request id (the server's log, `HUIYIN_BENCH_SERVER_LOG`, has the same id and its own latency).
fn trace_slow_ms() -> Option<f64> {
    static MS: std::sync::OnceLock<Option<f64>> = std::sync::OnceLock::new();
    *MS.get_or_init(|| std::env::var("HUIYIN_BENCH_TRACE_SLOW_MS").ok().and_then(|v| v.parse().ok()))
}

/// Whether a query value is a date or a time (`2026-12-02…`), which a variant hides.
fn is_date(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[7] == b'-'
}

/// One measured request.
struct Answer {
    took: std::time::Duration,
    ok: bool,
    /// Rows answered: the length of `items` (or of a top-level array); `None` for other bodies.
    results: Option<usize>,
    next_cursor: Option<String>,
}

/// Sends one request and reads the whole answer. A failure (a timeout, a 5xx) is logged and
/// counts at the time it took, so a query past the limit shows in the p95 instead of stopping
/// the run.
async fn get(server: &Server, path: &str, accept: &str) -> Answer {
    let t = Instant::now();
    let id = uuid::Uuid::new_v4();
    let r = server
        .client
        .get(format!("{}{path}", server.base()))
        .bearer_auth(&server.token)
        .header("Accept", accept)
        .header("x-request-id", id.to_string())
        .send()
        .await;
    let (ok, why, body) = match r {
        Ok(r) => {
            let status = r.status();
            match r.bytes().await {
                Ok(body) if status.is_success() => (true, String::new(), body),
                Ok(body) => {
                    let why = format!("{status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
                    (false, why, Default::default())
                }
                Err(e) => (false, format!("{status}, body unread: {e}"), Default::default()),
            }
        }
        Err(e) => (false, e.to_string(), Default::default()),
    };
    let took = t.elapsed();
    if trace_slow_ms().is_some_and(|ms| took.as_secs_f64() * 1e3 >= ms) {
        eprintln!(
            "bench: slow {:.1} ms at {}: {path} ({id})",
            took.as_secs_f64() * 1e3,
            chrono::Utc::now().format("%H:%M:%S%.3f")
        );
    }
    if !ok {
        eprintln!("bench: {path} failed after {:.1} s: {why}", took.as_secs_f64());
    }
    let json: Option<serde_json::Value> =
        if accept == "application/json" { serde_json::from_slice(&body).ok() } else { None };
    let results = json.as_ref().and_then(|v| match v {
        serde_json::Value::Array(a) => Some(a.len()),
        v => v.get("items").and_then(|i| i.as_array()).map(Vec::len),
    });
    let next_cursor = json.as_ref().and_then(|v| v.get("next_cursor")).and_then(|c| c.as_str()).map(str::to_owned);
    Answer { took, ok, results, next_cursor }
}

/// `s` percent-encoded for a query string (everything but the unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One request of `kind`, drawn at random; for the paged kinds (the ledger, search, overdue)
/// about a third are a later page: the first page is fetched unmeasured and its `next_cursor`
/// followed. A first page with no next page is itself the measured answer: asked again, it would
/// be answered from a warm cache, and more first pages are the only page at 10 k than at 1 M.
/// Returns the measured answer and its variant (the path with ids, dates and cursors replaced by
/// `…`, and the `Accept`).
async fn probe(server: &Server, kind: usize, rng: &mut StdRng, pools: &Pools) -> (Answer, String) {
    let (mut path, accept) = request(kind, rng, pools);
    if kind <= 2 && rng.gen_bool(0.3) {
        let first = get(server, &path, accept).await;
        match &first.next_cursor {
            Some(cursor) => {
                path = format!("{path}{}cursor={}", if path.contains('?') { '&' } else { '?' }, encode(cursor));
            }
            None => return (first, format!("{} {accept}", variant(&path))),
        }
    }
    let answer = get(server, &path, accept).await;
    (answer, format!("{} {accept}", variant(&path)))
}

/// What the requests of one kind measured.
#[derive(Default)]
pub struct KindResult {
    /// Every measured latency, in the order measured.
    samples: Vec<Duration>,
    pub failed: usize,
    /// The p95 of each pass (ms), in the order of the passes.
    pass_p95: Vec<f64>,
    /// Per variant: its latencies and the rows each answered.
    variants: std::collections::BTreeMap<String, (Vec<Duration>, Vec<usize>)>,
}

impl KindResult {
    /// Percentiles over every pass's requests.
    pub fn summary(&self) -> Summary {
        summarize(&self.samples)
    }

    /// Adds one pass's requests.
    fn absorb(&mut self, pass: KindResult) {
        self.pass_p95.push(pass.summary().p95);
        self.samples.extend(pass.samples);
        self.failed += pass.failed;
        for (v, (d, rows)) in pass.variants {
            let e = self.variants.entry(v).or_default();
            e.0.extend(d);
            e.1.extend(rows);
        }
    }
}

/// The pools requests are drawn from, read from the database (a superuser's connection).
async fn pools(db: &BenchDb) -> Pools {
    let c = connect(&db.super_url()).await;
    let ids = |sql: &'static str| {
        let c = &c;
        async move {
            c.query(sql, &[]).await.unwrap().iter().map(|r| r.get::<_, uuid::Uuid>(0).to_string()).collect::<Vec<_>>()
        }
    };
    let villages = ids("SELECT id FROM units WHERE kind IN ('village', 'farm', 'community')").await;
    let units = ids("SELECT id FROM units WHERE kind = 'department'").await;
    let cases = ids("SELECT case_id FROM ledger TABLESAMPLE SYSTEM (1) LIMIT 2000").await;
    let cases = if cases.is_empty() { ids("SELECT case_id FROM ledger LIMIT 2000").await } else { cases };
    let campaigns = ids("SELECT record_id FROM records WHERE stream_type = 'campaign'").await;
    assert!(!campaigns.is_empty(), "the benchmark database holds the demo campaign");
    let anchor: Option<chrono::DateTime<chrono::Utc>> =
        c.query_one("SELECT max(received_at) FROM ledger", &[]).await.unwrap().get(0);
    Pools { villages, units, cases, campaigns, anchor: anchor.unwrap_or_else(chrono::Utc::now) }
}

/// One pass of each of `kinds` on a running server, one client, sequential: `warm_up` unmeasured
/// then `reps` measured requests per kind, drawn with `seed` (the same seed, the same requests).
pub async fn measure_kinds(
    server: &Server,
    pools: &Pools,
    kinds: impl IntoIterator<Item = usize>,
    reps: usize,
    warm_up: usize,
    seed: u64,
) -> Vec<KindResult> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for kind in kinds {
        let mut r = KindResult::default();
        for i in 0..(reps + warm_up) {
            let (answer, v) = probe(server, kind, &mut rng, pools).await;
            if i >= warm_up {
                r.samples.push(answer.took);
                let e = r.variants.entry(v).or_default();
                e.0.push(answer.took);
                e.1.extend(answer.results);
                r.failed += usize::from(!answer.ok);
            }
        }
        out.push(r);
    }
    out
}

/// Adds a pass (one [`KindResult`] per kind) to the running totals.
pub fn absorb_pass(totals: &mut Vec<KindResult>, pass: Vec<KindResult>) {
    totals.resize_with(pass.len(), KindResult::default);
    for (t, r) in totals.iter_mut().zip(pass) {
        t.absorb(r);
    }
}

/// The latencies of each kind with `clients` clients at once, each sending the whole mix (every
/// kind in turn) `rounds` times after one unmeasured round.
async fn measure_concurrent(server: &Server, pools: &Pools, clients: usize, rounds: usize) -> Vec<(Summary, usize)> {
    let mut tasks = Vec::new();
    for client in 0..clients {
        tasks.push(async move {
            let mut rng = StdRng::seed_from_u64(100 + client as u64);
            let mut per_kind: Vec<(Vec<Duration>, usize)> = vec![(Vec::new(), 0); KINDS.len()];
            for round in 0..=rounds {
                for (kind, slot) in per_kind.iter_mut().enumerate() {
                    let (answer, _) = probe(server, kind, &mut rng, pools).await;
                    if round > 0 {
                        slot.0.push(answer.took);
                        slot.1 += usize::from(!answer.ok);
                    }
                }
            }
            per_kind
        });
    }
    let mut all: Vec<(Vec<Duration>, usize)> = vec![(Vec::new(), 0); KINDS.len()];
    for per_kind in futures_util::future::join_all(tasks).await {
        for (slot, (d, f)) in all.iter_mut().zip(per_kind) {
            slot.0.extend(d);
            slot.1 += f;
        }
    }
    all.iter().map(|(d, f)| (summarize(d), *f)).collect()
}

/// Whether the benchmark's cluster is the private one `scripts/pg.sh` runs (its port), which a
/// cold start may restart.
fn private_cluster() -> bool {
    let port = std::env::var("HUIYIN_PG_PORT").unwrap_or_else(|_| "55432".into());
    crate::setup::base_url().contains(&format!(":{port}/"))
}

/// Restarts the private cluster (`scripts/pg.sh stop`, `ensure`: an empty shared buffer cache)
/// and, where this user may, empties the operating system's page cache; says what it did. Any
/// other cluster is left alone (and the answer says so).
fn make_cold() -> String {
    if !private_cluster() {
        return "not restarted: the benchmark's cluster is not the private one; caches warm".into();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/pg.sh");
    for arg in ["stop", "ensure"] {
        let status = std::process::Command::new(script).arg(arg).status().unwrap();
        assert!(status.success(), "scripts/pg.sh {arg} failed");
    }
    let _ = std::process::Command::new("sync").status();
    match std::fs::write("/proc/sys/vm/drop_caches", "3") {
        Ok(()) => "PostgreSQL restarted and the OS page cache dropped: cold".into(),
        Err(e) => format!("PostgreSQL restarted (its buffers empty), the OS page cache kept warm (drop_caches: {e})"),
    }
}

/// The first `n` requests of each kind after [`make_cold`], in turn (kind 0, 1, …, then again),
/// on a server started after the restart (no other server runs; the pools were read before the
/// restart): p50 and the slowest.
async fn measure_cold(db: &BenchDb, pools: &Pools, n: usize) -> (String, Vec<(Summary, f64)>) {
    let how = make_cold();
    let server = serve(db).await;
    let mut rng = StdRng::seed_from_u64(11);
    let mut per_kind: Vec<Vec<Duration>> = vec![Vec::new(); KINDS.len()];
    for _ in 0..n {
        for (kind, slot) in per_kind.iter_mut().enumerate() {
            slot.push(probe(&server, kind, &mut rng, pools).await.0.took);
        }
    }
    let out = per_kind
        .iter()
        .map(|d| (summarize(d), d.iter().max().map_or(f64::NAN, |m| m.as_secs_f64() * 1000.0)))
        .collect();
    (how, out)
}

/// One size's database, its server and what its requests are drawn from.
struct Sized {
    cases: u64,
    db: BenchDb,
    server: Server,
    pools: Pools,
    measured: Vec<KindResult>,
}

/// Measures every size in [`PASSES`] alternating passes, then (at the largest) 4 clients at
/// once and a cold start; writes the report's section; then, with `throughput`, the standby,
/// rebuild and verification, and writes it again with them. Answers the goals of issue 14 that
/// these measured (see [`query_goals`], [`throughput_table`], [`crate::replica::goal`]).
pub async fn run(sizes: &[u64], reps: usize, out: &str, command: &str, throughput: bool) -> Vec<Goal> {
    let started = Instant::now();
    let mut sizes = sizes.to_vec();
    sizes.sort_unstable();
    sizes.dedup();
    let mut sized = Vec::new();
    for &cases in &sizes {
        let db = seeded(cases).await;
        let pools = pools(&db).await;
        let server = serve(&db).await;
        sized.push(Sized { cases, db, server, pools, measured: Vec::new() });
    }
    let per_pass = reps.div_ceil(PASSES);
    for pass in 0..PASSES {
        for s in &mut sized {
            eprintln!("bench: queries at {} cases, pass {}", s.cases, pass + 1);
            let warm_up = if pass == 0 { WARM_UP } else { 0 };
            let m = measure_kinds(&s.server, &s.pools, 0..KINDS.len(), per_pass, warm_up, 7 + pass as u64).await;
            absorb_pass(&mut s.measured, m);
        }
    }
    for s in &sized {
        for (name, k) in KINDS.iter().zip(&s.measured) {
            let m = k.summary();
            eprintln!(
                "bench: {} cases, {name}: p50 {:.1} / p95 {:.1} / p99 {:.1} ms, {} failed",
                s.cases, m.p50, m.p95, m.p99, k.failed
            );
        }
    }
    let mut largest = sized.pop().expect("at least one size");
    // Only the largest size's server runs from here on.
    let smaller: Vec<(u64, Vec<KindResult>)> = sized.into_iter().map(|s| (s.cases, s.measured)).collect();
    let clients = 4;
    let rounds = (reps / 8).max(3);
    let concurrent = measure_concurrent(&largest.server, &largest.pools, clients, rounds).await;
    drop(largest.server);
    let cold_n = if reps >= 100 { 5 } else { 2 };
    let (cold_how, cold) = measure_cold(&largest.db, &largest.pools, cold_n).await;
    eprintln!("bench: cold: {cold_how}");
    let db = largest.db;
    let mut results = smaller;
    results.push((largest.cases, std::mem::take(&mut largest.measured)));
    let age_days = (chrono::Utc::now() - largest.pools.anchor).num_hours() as f64 / 24.0;
    let mut body = String::new();
    body.push_str(&format!(
        "\nRun {} on {} with PostgreSQL {}; command: `{command}`. Per size, {} measured requests per kind in {PASSES} \
         passes that alternate between the sizes ({per_pass} per kind and pass; {WARM_UP} warm-up requests per kind \
         before the first), one client, sequential, over loopback HTTP to a `huiyin serve` process (client-observed \
         latency, so HTTP and JSON are included). Took {:.0} s. Server settings as Huiyin's connections see them: \
         `{}`.\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        pg_version(&db).await,
        per_pass * PASSES,
        started.elapsed().as_secs_f64(),
        crate::append::pool_settings(db.app().url.expose()).await,
    ));
    let last_n = results.last().map_or(0, |(n, _)| *n);
    body.push_str(&format!(
        "Each kind draws its requests at random from the variants listed below. Dates are relative to the newest \
         case's receipt, {anchor} ({age_days:.1} days before this run), so a database seeded days ago is asked about \
         the same spans. What the server's clock decides still drifts as the seeded data ages: the overdue view, the \
         ledger's `overdue=true` and `sort=due_asc`, and the demo campaign's phase (its summary report is frozen once \
         the campaign has finished). About a third of the ledger, search and overdue requests are a later page, \
         following the first page's cursor; when the first page has no next one, that first page is the measured request. The ratio is the p95 over every request at the \
         largest size ÷ the p95 at the smallest; each pass's ratio is in brackets, for the spread (a pass's p95 rests on a \
         third of the requests). The absolute goals were set on the machine of \
         2026-11-28 and are shown against this machine's figures. Beside the sequential figures: the p95 with \
         {clients} clients at once at {last_n} cases ({rounds} rounds of the whole mix per client), and the first \
         {cold_n} requests of each kind after a cold start ({cold_how}).\n\n",
        anchor = largest.pools.anchor.format("%Y-%m-%d %H:%M UTC"),
    ));
    body.push_str(&queries_table(&results, &concurrent, &cold, clients, last_n));
    body.push_str(&variants_table(&results));
    let mut goals = if results.len() > 1 { query_goals(&results) } else { Vec::new() };
    if !throughput {
        body.push_str(
            "\nRebuild, verification and the standby were not measured in this run (`--throughput false`).\n",
        );
        write_section(out, "Queries, rebuild, verification", &body);
        println!("{body}");
        return goals;
    }
    // Written now, so a failure in the steps below loses none of it.
    write_section(out, "Queries, rebuild, verification", &body);
    let window = Duration::from_secs(if reps >= 100 { 6 } else { 1 });
    let replica = crate::replica::run(&db, &largest.pools, window, reps).await;
    write_section(out, "Read replica", &crate::replica::section(&replica, last_n));
    let (table, throughput_goals) = throughput_table(&db, last_n, reps).await;
    body.push_str(&table);
    write_section(out, "Queries, rebuild, verification", &body);
    println!("{body}");
    goals.extend(throughput_goals);
    goals.push(crate::replica::goal(&replica, last_n));
    goals
}

/// How one kind's p95 grows from the smallest size to the largest.
struct Growth {
    /// p95 at the largest ÷ p95 at the smallest, over every request (NaN with one size).
    ratio: f64,
    /// Each pass's ratio, formatted: the spread (a pass's p95 rests on a third of the requests).
    each: Vec<String>,
    /// Met when the ratio and every pass's are ≤ 1.5, missed when all are over (or a request
    /// failed), undecided when they fall on both sides.
    verdict: Verdict,
    /// A request of this kind failed at some size.
    any_failed: bool,
    /// The p95 at the largest size, ms.
    p95: f64,
}

fn growth(results: &[(u64, Vec<KindResult>)], k: usize) -> Growth {
    let (first, last) = (&results[0].1[k], &results[results.len() - 1].1[k]);
    // The figure is the ratio of the p95s over every request (about 200 a size); a pass's p95
    // rests on a third of them. The verdict is met only when the figure and every pass are within
    // the bound, missed when none is, undecided otherwise (`Verdict::across`). One size: no ratio.
    let ratio = if results.len() > 1 { last.summary().p95 / first.summary().p95 } else { f64::NAN };
    let passes: Vec<f64> = if results.len() > 1 {
        first.pass_p95.iter().zip(&last.pass_p95).map(|(a, b)| b / a).collect()
    } else {
        Vec::new()
    };
    let any_failed = results.iter().any(|(_, s)| s[k].failed > 0);
    let verdict = if any_failed {
        Verdict::Missed
    } else {
        Verdict::across(std::iter::once(ratio).chain(passes.iter().copied()).map(|r| r <= 1.5))
    };
    let each = passes.iter().map(|r| format!("{r:.2}")).collect();
    Growth { ratio, each, verdict, any_failed, p95: last.summary().p95 }
}

/// The queries' goals of issue 14: the p95 ratio largest ÷ smallest of the ledger mix, search,
/// overdue, stats and KPIs (≤ 1.5), and the first four's p95 at the largest size against the
/// absolute goals set on the machine of 2026-11-28.
fn query_goals(results: &[(u64, Vec<KindResult>)]) -> Vec<Goal> {
    let (small, large) = (results[0].0, results[results.len() - 1].0);
    let mut goals = Vec::new();
    // One size has no ratio: only the absolute figures are reported.
    for k in [0, 1, 2, 3, 5].into_iter().filter(|_| results.len() > 1) {
        let g = growth(results, k);
        let failed = if g.any_failed { "; requests failed" } else { "" };
        goals.push(Goal::new(
            format!("p95 at {large} ÷ p95 at {small} cases: {}", KINDS[k]),
            "≤ 1.5",
            format!("{:.3} (its passes [{}]){failed}", g.ratio, g.each.join(" ")),
            g.verdict,
        ));
    }
    // Issue 14: "reported beside the ratios", its bounds set on another machine.
    for k in 0..4 {
        let (g, goal) = (growth(results, k), GOALS[k].unwrap_or(f64::NAN));
        goals.push(Goal::new(
            format!("p95 at {large} cases: {}", KINDS[k]),
            format!("reported (≤ {goal} ms on the machine of 2026-11-28)"),
            format!("{:.1} ms, {} that bound", g.p95, if g.p95 <= goal && !g.any_failed { "within" } else { "over" }),
            Verdict::Reported,
        ));
    }
    goals
}

/// The query table: per kind, each size's percentiles, the ratio, the goals, 4 clients, cold.
fn queries_table(
    results: &[(u64, Vec<KindResult>)],
    concurrent: &[(Summary, usize)],
    cold: &[(Summary, f64)],
    clients: usize,
    last_n: u64,
) -> String {
    let mut body = String::from("| query |");
    for (n, _) in results {
        body.push_str(&format!(" p50 / p95 / p99 at {n} (ms) |"));
    }
    body.push_str(&format!(
        " ratio p95 largest ÷ smallest, over every request [each pass's] | ratio ≤ 1.5? | goal p95 at the largest (2026-11-28 \
         machine) | p95 ≤ goal here? | p95, {clients} clients, at {last_n} | cold p50 / slowest at {last_n} |\n|---|"
    ));
    for _ in results {
        body.push_str("---|");
    }
    body.push_str("---|---|---|---|---|---|\n");
    let judge = |ok: bool| if ok { "met" } else { "**missed**" };
    for (k, name) in KINDS.iter().enumerate() {
        body.push_str(&format!("| {name} |"));
        for (_, s) in results {
            let (m, failed) = (s[k].summary(), s[k].failed);
            let failed = if failed > 0 { format!(" ({failed} failed)") } else { String::new() };
            body.push_str(&format!(" {:.1} / {:.1} / {:.1}{failed} |", m.p50, m.p95, m.p99));
        }
        let Growth { ratio, each, verdict, any_failed, p95 } = growth(results, k);
        let (ratio_ok, goal_ok) = if any_failed {
            ("**missed** (requests failed)".to_owned(), "**missed** (requests failed)".to_owned())
        } else {
            let ratio_ok = if ratio.is_nan() { "—".to_owned() } else { verdict.show().to_owned() };
            (ratio_ok, GOALS[k].map_or("—".to_owned(), |g| judge(p95 <= g).to_owned()))
        };
        let (conc, conc_failed) = &concurrent[k];
        let conc_failed = if *conc_failed > 0 { format!(" ({conc_failed} failed)") } else { String::new() };
        let ratio =
            if ratio.is_nan() { "— (one size)".to_owned() } else { format!("{ratio:.2} [{}]", each.join(" ")) };
        body.push_str(&format!(
            " {ratio} | {ratio_ok} | {} | {goal_ok} | {:.1}{conc_failed} | {:.1} / {:.1} |\n",
            GOALS[k].map_or("—".into(), |g| format!("≤ {g} ms")),
            conc.p95,
            cold[k].0.p50,
            cold[k].1,
        ));
    }
    body
}

/// Per variant: requests, p50 / p95 and the mean rows answered, at each size.
fn variants_table(results: &[(u64, Vec<KindResult>)]) -> String {
    let mut body = String::from(
        "\nPer variant (sequential, one client, every pass): requests, p50 / p95 in ms (with a few dozen requests the \
         p95 is close to the slowest), and the mean rows answered (`items`; — for answers without rows).\n\n\
         | kind | variant |",
    );
    for (n, _) in results {
        body.push_str(&format!(" at {n}: n, p50 / p95, rows |"));
    }
    body.push_str("\n|---|---|");
    for _ in results {
        body.push_str("---|");
    }
    body.push('\n');
    for (k, name) in KINDS.iter().enumerate() {
        let mut names: std::collections::BTreeSet<&String> = Default::default();
        for (_, s) in results {
            names.extend(s[k].variants.keys());
        }
        for v in names {
            body.push_str(&format!("| {name} | `{}` |", v.replace('|', "\\|")));
            for (_, s) in results {
                match s[k].variants.get(v) {
                    Some((d, rows)) => {
                        let m = summarize(d);
                        let rows = if rows.is_empty() {
                            "—".to_owned()
                        } else {
                            format!("{:.1}", rows.iter().sum::<usize>() as f64 / rows.len() as f64)
                        };
                        body.push_str(&format!(" {}, {:.1} / {:.1}, {rows} |", d.len(), m.p50, m.p95));
                    }
                    None => body.push_str(" — |"),
                }
            }
            body.push('\n');
        }
    }
    body
}

/// Rebuild and verification at `cases`, each ÷ the fastest raw read of the same rows; no
/// server runs meanwhile. The rebuild (which replaces the database's ledger and rollups with
/// equal ones) runs once at a million cases (about 20 minutes) and three times below; the rest
/// three times in rotating order; every median is of an odd count. Answers the table and the two
/// goals (verification ≥ 0.5 and rebuild ≥ 0.25 of the raw read).
pub async fn throughput_table(db: &BenchDb, cases: u64, reps: usize) -> (String, Vec<Goal>) {
    let rebuild_runs = if cases >= 100_000 { 1 } else { 3 };
    let mut rebuilds = Vec::new();
    let mut phases = Vec::new();
    for _ in 0..rebuild_runs {
        let r = infra::ledger::rebuild(&db.owner()).await.unwrap();
        rebuilds.push(r.events_per_second());
        eprintln!("bench: rebuild {:.0} events/s ({:.1} s): {}", r.events_per_second(), r.seconds, r.phases_line());
        phases.push(r.phases_line());
    }
    // Verification and the four raw reads, three rounds, the order rotating by one place per
    // round, each after a `CHECKPOINT` (the rebuild wrote gigabytes), so no side always gets the
    // quieter machine or the warmer cache.
    let mut verifies = Vec::new();
    let store = infra::EventStore::new(db.app().pool().unwrap());
    let su = connect(&db.super_url()).await;
    let mut reads: Vec<(RawRead, Vec<f64>)> =
        [RawRead::Whole, RawRead::Halves, RawRead::BlockHalves, RawRead::Ordered].map(|how| (how, Vec::new())).into();
    for round in 0..3 {
        for k in 0..5 {
            su.batch_execute("CHECKPOINT").await.unwrap();
            match (k + round) % 5 {
                0 => {
                    let t = Instant::now();
                    let report = store.verify_all().await.unwrap();
                    let secs = t.elapsed().as_secs_f64();
                    assert!(report.failures.is_empty());
                    verifies.push(report.events as f64 / secs);
                    eprintln!(
                        "bench: verify {:.0} events/s ({} events, {secs:.1} s)",
                        report.events as f64 / secs,
                        report.events
                    );
                }
                j => {
                    let (how, v) = &mut reads[j - 1];
                    let r = raw_read(db, *how).await;
                    eprintln!("bench: raw read ({how:?}) {r:.0} events/s");
                    v.push(r);
                }
            }
        }
    }
    let events: i64 = su.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0);
    let (rb, rb_lo, rb_hi) = median_spread(&rebuilds);
    let (vf, vf_lo, vf_hi) = median_spread(&verifies);
    // The judged denominator: the fastest of the unordered reads (the machine's limit).
    let raw = reads.iter().filter(|(h, _)| *h != RawRead::Ordered).map(|(_, v)| median_spread(v).0).fold(0.0, f64::max);
    let judged = |ratio: f64, goal: f64| Verdict::of(ratio >= goal).show();
    let runs = |n: usize| if n == 1 { "one run".to_owned() } else { format!("median of {n}") };
    let mut body = format!(
        "\nAt {cases} cases ({events} events{}), range in brackets. Verification and rebuild are divided \
         by the fastest of the three unordered raw reads (the machine's limit for reading these rows); the read in \
         `(case_id, version)` order is shown for what that order costs. Verification and the raw reads ran in three \
         rounds, their order rotating each round, each after a `CHECKPOINT`.\n\n\
         | | events/s | runs | ÷ raw read | goal |\n|---|---|---|---|---|\n",
        if reps > 0 { format!("; `reps` = {reps}") } else { String::new() }
    );
    for (how, v) in &reads {
        let (m, lo, hi) = median_spread(v);
        body.push_str(&format!(
            "| raw read: {} | {m:.0} ({lo:.0}–{hi:.0}) | {} | {:.2} | |\n",
            how.describe(),
            runs(v.len()),
            m / raw
        ));
    }
    body.push_str(&format!(
        "| chain verification (`verify_all`: two connections on one snapshot, alternate 8 MiB chunks of the table's \
         blocks each, in physical order, hashing on two threads, linking each case's chain in memory) | {vf:.0} ({vf_lo:.0}–{vf_hi:.0}) | {} | {:.2} | ≥ 0.5: {} |\n\
         | projection rebuild (ledger, KPI facts, rollups, indexes; `infra::ledger::rebuild`) | {rb:.0} \
         ({rb_lo:.0}–{rb_hi:.0}) | {} | {:.2} | ≥ 0.25: {} |\n",
        runs(verifies.len()),
        vf / raw,
        judged(vf / raw, 0.5),
        runs(rebuilds.len()),
        rb / raw,
        judged(rb / raw, 0.25),
    ));
    body.push_str("\nThe rebuild's phases, each run:\n\n");
    for (k, line) in phases.iter().enumerate() {
        body.push_str(&format!("- run {}: {line}\n", k + 1));
    }
    // Each round's own ratio: its verification ÷ its fastest unordered read.
    let rounds: Vec<f64> = verifies
        .iter()
        .enumerate()
        .map(|(i, v)| v / reads.iter().filter(|(h, _)| *h != RawRead::Ordered).map(|(_, r)| r[i]).fold(0.0, f64::max))
        .collect();
    let goals = vec![
        Goal::new(
            format!("chain verification ÷ the fastest raw read of the same rows, {cases} cases"),
            "≥ 0.5",
            // The median of the paired rounds, as the HTTP ratios are taken; the ratio of the
            // medians beside it.
            format!(
                "{:.2}, the median of each round's ratio [{}] (the medians' ratio: {vf:.0} ÷ {raw:.0} events/s = {:.2})",
                median_spread(&rounds).0,
                rounds.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(" "),
                vf / raw,
            ),
            Verdict::across(rounds.iter().copied().chain(std::iter::once(vf / raw)).map(|r| r >= 0.5)),
        ),
        Goal::new(
            format!("projection rebuild ÷ the same raw read, {cases} cases"),
            "≥ 0.25",
            format!("{:.2} ({rb:.0} events/s, {})", rb / raw, runs(rebuilds.len())),
            Verdict::of(rb / raw >= 0.25),
        ),
    ];
    (body, goals)
}

/// How the raw read reads the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawRead {
    /// One connection, the table's physical order.
    Whole,
    /// Two connections at once, one per half of the case-id space, each in physical order (each
    /// reads the whole table and returns half).
    Halves,
    /// Two connections at once, one per half of the table's blocks, each a TID range scan (each
    /// reads half the table, as verification's two scans of alternate chunks do).
    BlockHalves,
    /// One connection, in `(case_id, version)` order: what reading by case costs.
    Ordered,
}

impl RawRead {
    fn describe(self) -> &'static str {
        match self {
            Self::Whole => {
                "`COPY (SELECT <the columns the hash covers> FROM events) TO STDOUT`, binary, one connection"
            }
            Self::Halves => "the same, two connections at once, one per half of the case ids",
            Self::BlockHalves => "the same, two connections at once, one per half of the table's blocks",
            Self::Ordered => "one connection, `ORDER BY case_id, version`",
        }
    }
}

/// Reads every event's columns with `COPY … TO STDOUT (FORMAT binary)` into a null sink, as
/// `how` says: the database's own read speed for those rows, in events per second.
async fn raw_read(db: &BenchDb, how: RawRead) -> f64 {
    let cols = infra::store::HASHED_COLUMNS;
    let mid = uuid::Uuid::from_u128(1u128 << 127);
    let queries: Vec<String> = match how {
        RawRead::Whole => vec![format!("SELECT {cols} FROM events")],
        RawRead::Halves => vec![
            format!("SELECT {cols} FROM events WHERE case_id < '{mid}'"),
            format!("SELECT {cols} FROM events WHERE case_id >= '{mid}'"),
        ],
        RawRead::BlockHalves => {
            let blocks: i64 = connect(&db.super_url())
                .await
                .query_one("SELECT pg_relation_size('events') / current_setting('block_size')::bigint", &[])
                .await
                .unwrap()
                .get(0);
            vec![
                format!("SELECT {cols} FROM events WHERE ctid < '({},0)'::tid", blocks / 2),
                format!("SELECT {cols} FROM events WHERE ctid >= '({},0)'::tid", blocks / 2),
            ]
        }
        RawRead::Ordered => vec![format!("SELECT {cols} FROM events ORDER BY case_id, version")],
    };
    let mut clients = Vec::new();
    for _ in &queries {
        let c = connect(&db.super_url()).await;
        c.batch_execute("SET statement_timeout = 0").await.unwrap();
        clients.push(c);
    }
    let t = Instant::now();
    let reads = clients.iter().zip(&queries).map(|(c, q)| async move {
        use futures_util::TryStreamExt;
        let stream = c.copy_out(&format!("COPY ({q}) TO STDOUT (FORMAT binary)")).await.unwrap();
        let mut stream = std::pin::pin!(stream);
        let mut bytes = 0usize;
        while let Some(chunk) = stream.try_next().await.unwrap() {
            bytes += chunk.len();
        }
        bytes
    });
    let bytes: usize = futures_util::future::join_all(reads).await.into_iter().sum();
    let secs = t.elapsed().as_secs_f64();
    let events: i64 = clients[0].query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0);
    eprintln!("bench: raw read ({how:?}) of {events} events, {} MiB in {secs:.1} s", bytes / (1 << 20));
    events as f64 / secs
}

async fn pg_version(db: &BenchDb) -> String {
    let c = connect(&db.super_url()).await;
    let v: String = c.query_one("SHOW server_version", &[]).await.unwrap().get(0);
    v
}
