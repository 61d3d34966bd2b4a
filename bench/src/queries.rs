//! Query latencies through the real HTTP API, at several database sizes.

use std::time::Instant;

use api::settings::{DatabaseArgs, ServeArgs, VaultArgs};
use api::startup::Application;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::report::{Summary, machine, summarize, write_section};
use crate::setup::{BENCH_KEK, BenchDb, connect, seeded};

const SECRET: &str = "bench-4kXg7NR80udDq9G0SOyuf58iMROyyp5Hypz0PIwU";
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
/// 500 ms, the report 1 s).
const GOALS: &[Option<f64>] =
    &[Some(20.0), Some(50.0), Some(20.0), Some(200.0), None, Some(200.0), Some(500.0), Some(1000.0)];

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

pub struct Server {
    base: String,
    client: reqwest::Client,
    token: String,
}

async fn serve(db: &BenchDb) -> Server {
    serve_url(db.app().url.expose()).await
}

/// A Huiyin server on `url` (the service's role), in this process, with a supervisor's token.
pub async fn serve_url(url: &str) -> Server {
    let settings = ServeArgs {
        bind: "127.0.0.1:0".parse().unwrap(),
        request_timeout_ms: 30_000,
        migrate: false,
        cors_origins: Vec::new(),
        db: DatabaseArgs {
            url: url.to_owned(),
            admin_url: None,
            pool_size: 16,
            statement_timeout_ms: 30_000,
            append_batching: false,
        },
        auth: crate::http::auth_args(SECRET),
        vault: VaultArgs {
            kek: Some(hex::encode(BENCH_KEK)),
            kek_id: "bench-kek".into(),
            retired: None,
            reveal_replay_s: api::settings::DEFAULT_REVEAL_REPLAY_S,
        },
        checkpoints: api::settings::CheckpointArgs {
            private_key: None,
            public_key: None,
            key_id: "bench".into(),
            interval_s: 0,
        },
        capacity: Default::default(),
        metrics: Default::default(),
        notices: Default::default(),
        public: Default::default(),
        supervision: api::settings::SupervisionArgs { rules_interval_s: 0, ..Default::default() },
    };
    let auth = api::auth::Authenticator::from_settings(&settings.auth).unwrap();
    let token = auth.sign("bench-supervisor", domain::Role::Supervisor, None, chrono::Duration::hours(4)).unwrap();
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Server { base, client: reqwest::Client::builder().no_proxy().build().unwrap(), token }
}

/// The request of one kind (its path and `Accept`), drawn at random from realistic variations.
fn request(kind: usize, rng: &mut StdRng, pools: &Pools) -> (String, &'static str) {
    let Pools { villages, units, cases, campaigns, anchor } = pools;
    let anchor = *anchor;
    let pick = |rng: &mut StdRng, v: &[String]| v[rng.gen_range(0..v.len())].clone();
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
            Some((k, v)) if uuid::Uuid::parse_str(v).is_ok() || v.starts_with("20") || k == "cursor" => {
                format!("{k}=…")
            }
            _ => kv.to_owned(),
        })
        .collect();
    format!("{}?{}", base.join("/"), query.join("&"))
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
    let r = server
        .client
        .get(format!("{}{path}", server.base))
        .bearer_auth(&server.token)
        .header("Accept", accept)
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
/// followed. Returns the measured answer and its variant (the path with ids, dates and cursors
/// replaced by `…`, and the `Accept`).
async fn probe(server: &Server, kind: usize, rng: &mut StdRng, pools: &Pools) -> (Answer, String) {
    let (mut path, accept) = request(kind, rng, pools);
    if kind <= 2 && rng.gen_bool(0.3) {
        let first = get(server, &path, accept).await;
        if let Some(cursor) = first.next_cursor {
            path = format!("{path}{}cursor={}", if path.contains('?') { '&' } else { '?' }, encode(&cursor));
        }
    }
    let answer = get(server, &path, accept).await;
    (answer, format!("{} {accept}", variant(&path)))
}

/// What the requests of one kind measured.
pub struct KindResult {
    pub summary: Summary,
    pub failed: usize,
    /// Per variant: its latencies and the rows each answered.
    variants: std::collections::BTreeMap<String, (Vec<std::time::Duration>, Vec<usize>)>,
}

/// The pools requests are drawn from, read from the database.
async fn pools(db: &BenchDb) -> Pools {
    pools_at(&db.super_url()).await
}

/// The pools requests are drawn from, read through `url` (a superuser's connection).
pub async fn pools_at(url: &str) -> Pools {
    let c = connect(url).await;
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

/// The latencies of each kind from one client, sequential: `reps` requests per kind after 20
/// warm-up requests.
async fn measure(db: &BenchDb, reps: usize) -> Vec<KindResult> {
    let server = serve(db).await;
    let pools = pools(db).await;
    measure_kinds(&server, &pools, 0..KINDS.len(), reps).await
}

/// [`measure`] of some kinds on a running server (the same seed: the same requests).
pub async fn measure_kinds(
    server: &Server,
    pools: &Pools,
    kinds: impl IntoIterator<Item = usize>,
    reps: usize,
) -> Vec<KindResult> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut out = Vec::new();
    for kind in kinds {
        let mut samples = Vec::with_capacity(reps);
        let mut variants: std::collections::BTreeMap<String, (Vec<std::time::Duration>, Vec<usize>)> =
            Default::default();
        let mut failed = 0;
        for i in 0..(reps + 20) {
            let (answer, v) = probe(server, kind, &mut rng, pools).await;
            if i >= 20 {
                samples.push(answer.took);
                let e = variants.entry(v).or_default();
                e.0.push(answer.took);
                e.1.extend(answer.results);
                failed += usize::from(!answer.ok);
            }
        }
        out.push(KindResult { summary: summarize(&samples), failed, variants });
    }
    out
}

/// The latencies of each kind with `clients` clients at once, each sending the whole mix (every
/// kind in turn) `rounds` times after one unmeasured round.
async fn measure_concurrent(db: &BenchDb, clients: usize, rounds: usize) -> Vec<(Summary, usize)> {
    let server = std::sync::Arc::new(serve(db).await);
    let pools = std::sync::Arc::new(pools(db).await);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (server, pools) = (server.clone(), pools.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(100 + client as u64);
            let mut per_kind: Vec<(Vec<std::time::Duration>, usize)> = vec![(Vec::new(), 0); KINDS.len()];
            for round in 0..=rounds {
                for (kind, slot) in per_kind.iter_mut().enumerate() {
                    let (answer, _) = probe(&server, kind, &mut rng, &pools).await;
                    if round > 0 {
                        slot.0.push(answer.took);
                        slot.1 += usize::from(!answer.ok);
                    }
                }
            }
            per_kind
        }));
    }
    let mut all: Vec<(Vec<std::time::Duration>, usize)> = vec![(Vec::new(), 0); KINDS.len()];
    for t in tasks {
        for (slot, (d, f)) in all.iter_mut().zip(t.await.unwrap()) {
            slot.0.extend(d);
            slot.1 += f;
        }
    }
    all.iter().map(|(d, f)| (summarize(d), *f)).collect()
}

/// Restarts the private cluster (`scripts/pg.sh stop`, `ensure`: an empty shared buffer cache)
/// and, where this user may, empties the operating system's page cache; says what it did.
fn make_cold() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/pg.sh");
    for arg in ["stop", "ensure"] {
        let status = std::process::Command::new(script).arg(arg).status().unwrap();
        assert!(status.success(), "scripts/pg.sh {arg} failed");
    }
    let _ = std::process::Command::new("sync").status();
    match std::fs::write("/proc/sys/vm/drop_caches", "3") {
        Ok(()) => "PostgreSQL restarted and the OS page cache dropped".into(),
        Err(e) => format!("PostgreSQL restarted; the OS page cache was kept (drop_caches: {e})"),
    }
}

/// The first `n` requests of each kind after [`make_cold`], in turn (kind 0, 1, …, then again),
/// on a server started after the restart: p50 and the slowest.
async fn measure_cold(db: &BenchDb, n: usize) -> (String, Vec<(Summary, f64)>) {
    let how = make_cold();
    let server = serve(db).await;
    let pools = pools(db).await;
    let mut rng = StdRng::seed_from_u64(11);
    let mut per_kind: Vec<Vec<std::time::Duration>> = vec![Vec::new(); KINDS.len()];
    for _ in 0..n {
        for (kind, slot) in per_kind.iter_mut().enumerate() {
            slot.push(probe(&server, kind, &mut rng, &pools).await.0.took);
        }
    }
    let out = per_kind
        .iter()
        .map(|d| (summarize(d), d.iter().max().map_or(f64::NAN, |m| m.as_secs_f64() * 1000.0)))
        .collect();
    (how, out)
}

/// Measures every size, then rebuild and verification at the largest, and writes the report.
pub async fn run(sizes: &[u64], reps: usize, out: &str, command: &str, throughput: bool) {
    let started = Instant::now();
    let mut results: Vec<(u64, Vec<KindResult>)> = Vec::new();
    let mut largest = None;
    for &n in sizes {
        let db = seeded(n).await;
        eprintln!("bench: measuring queries at {n} cases");
        let measured = measure(&db, reps).await;
        for (name, k) in KINDS.iter().zip(&measured) {
            let m = k.summary;
            eprintln!(
                "bench: {n} cases, {name}: p50 {:.1} / p95 {:.1} / p99 {:.1} ms, {} failed",
                m.p50, m.p95, m.p99, k.failed
            );
        }
        results.push((n, measured));
        largest = Some(db);
    }
    let db = largest.expect("at least one size");
    let cold_n = if reps >= 100 { 5 } else { 2 };
    let (cold_how, cold) = measure_cold(&db, cold_n).await;
    eprintln!("bench: cold: {cold_how}");
    let clients = 4;
    let rounds = (reps / 8).max(3);
    let concurrent = measure_concurrent(&db, clients, rounds).await;
    let replica = if throughput {
        let window = std::time::Duration::from_secs(if reps >= 100 { 6 } else { 1 });
        Some(crate::replica::run(&db, window, reps).await)
    } else {
        None
    };
    let mut rebuilds = Vec::new();
    for _ in 0..if throughput { 2 } else { 0 } {
        let r = infra::ledger::rebuild(&db.owner()).await.unwrap();
        rebuilds.push(r.events_per_second());
        eprintln!("bench: rebuild {:.0} events/s ({:.1} s)", r.events_per_second(), r.seconds);
    }
    let mut verifies = Vec::new();
    let store = infra::EventStore::new(db.app().pool().unwrap());
    for _ in 0..if throughput { 2 } else { 0 } {
        let t = Instant::now();
        let report = store.verify_all().await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert!(report.failures.is_empty());
        verifies.push(report.events as f64 / secs);
        eprintln!("bench: verify {:.0} events/s ({} events, {secs:.1} s)", report.events as f64 / secs, report.events);
    }
    let events: i64 =
        connect(&db.super_url()).await.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0);
    let mut raw_reads = Vec::new();
    for _ in 0..if throughput { 3 } else { 0 } {
        let r = raw_read(&db).await;
        eprintln!("bench: raw read {r:.0} events/s");
        raw_reads.push(r);
    }

    let mut body = String::new();
    body.push_str(&format!(
        "\nRun {} on {} with PostgreSQL {}; command: `{command}`; {} measured requests per kind after 20 warm-up requests, \
         one client, sequential, over loopback HTTP (client-observed latency, so HTTP and JSON are included). \
         Took {:.0} s.\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        pg_version(&db).await,
        reps,
        started.elapsed().as_secs_f64()
    ));
    let last_n = results.last().map_or(0, |(n, _)| *n);
    body.push_str(&format!(
        "Each kind draws its requests at random from the variants listed below (dates relative to the newest \
         case's receipt, {anchor}, so a database seeded days ago is asked about the same spans; the overdue view \
         is computed against the server's clock, so its counts still drift as the seeded data ages). About a third \
         of the ledger, search and overdue requests are a later page, following the first page's cursor. \
         Beside the sequential figures: the p95 with {clients} clients at once at {last_n} cases ({rounds} rounds of \
         the whole mix per client), and the first {cold_n} requests of each kind after a cold start ({cold_how}).\n\n",
        anchor = pools(&db).await.anchor.format("%Y-%m-%d %H:%M UTC"),
    ));
    body.push_str("| query |");
    for (n, _) in &results {
        body.push_str(&format!(" p50 / p95 / p99 at {n} (ms) |"));
    }
    body.push_str(&format!(
        " ratio p95 largest ÷ smallest (goal ≤ 1.5) | goal p95 at the largest | met? | p95, {clients} clients, at {last_n} | \
         cold p50 / slowest at {last_n} |\n|---|"
    ));
    for _ in &results {
        body.push_str("---|");
    }
    body.push_str("---|---|---|---|---|\n");
    for (k, name) in KINDS.iter().enumerate() {
        body.push_str(&format!("| {name} |"));
        for (_, s) in &results {
            let (m, failed) = (&s[k].summary, s[k].failed);
            let failed = if failed > 0 { format!(" ({failed} failed)") } else { String::new() };
            body.push_str(&format!(" {:.1} / {:.1} / {:.1}{failed} |", m.p50, m.p95, m.p99));
        }
        let first = results.first().map(|(_, s)| s[k].summary.p95).unwrap_or(f64::NAN);
        let last = results.last().map(|(_, s)| s[k].summary.p95).unwrap_or(f64::NAN);
        let ratio = last / first;
        let goal = GOALS[k];
        let any_failed = results.iter().any(|(_, s)| s[k].failed > 0);
        let met = match goal {
            _ if any_failed => "**missed** (requests failed)".to_owned(),
            Some(g) => {
                if last <= g && ratio <= 1.5 {
                    "met".to_owned()
                } else if last <= g {
                    "p95 met, ratio missed".to_owned()
                } else {
                    "**missed**".to_owned()
                }
            }
            None => {
                if ratio <= 1.5 {
                    "met (ratio)".into()
                } else {
                    "ratio missed".into()
                }
            }
        };
        let (conc, conc_failed) = &concurrent[k];
        let conc_failed = if *conc_failed > 0 { format!(" ({conc_failed} failed)") } else { String::new() };
        body.push_str(&format!(
            " {ratio:.2} | {} | {met} | {:.1}{conc_failed} | {:.1} / {:.1} |\n",
            goal.map_or("—".into(), |g| format!("≤ {g} ms")),
            conc.p95,
            cold[k].0.p50,
            cold[k].1,
        ));
    }
    body.push_str(
        "\nPer variant (sequential, one client): requests, p50 / p95 in ms, and the mean rows answered (`items`; \
         — for answers without rows).\n\n| kind | variant |",
    );
    for (n, _) in &results {
        body.push_str(&format!(" at {n}: n, p50 / p95, rows |"));
    }
    body.push_str("\n|---|---|");
    for _ in &results {
        body.push_str("---|");
    }
    body.push('\n');
    for (k, name) in KINDS.iter().enumerate() {
        let mut names: std::collections::BTreeSet<&String> = Default::default();
        for (_, s) in &results {
            names.extend(s[k].variants.keys());
        }
        for v in names {
            body.push_str(&format!("| {name} | `{}` |", v.replace('|', "\\|")));
            for (_, s) in &results {
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
    if let Some(r) = &replica {
        write_section(out, "Read replica", &crate::replica::section(r, last_n, reps));
    }
    if !throughput {
        body.push_str(
            "\nRebuild, verification and the standby were not measured in this run (`--throughput false`).\n",
        );
        write_section(out, "Queries, rebuild, verification", &body);
        println!("{body}");
        return;
    }
    let (rb, rb_lo, rb_hi) = crate::report::median_spread(&rebuilds);
    let (vf, vf_lo, vf_hi) = crate::report::median_spread(&verifies);
    let (raw, raw_lo, raw_hi) = crate::report::median_spread(&raw_reads);
    let judged = |ratio: f64, goal: f64| if ratio >= goal { "met" } else { "**missed**" };
    body.push_str(&format!(
        "\nAt {} cases ({events} events), each figure the median of its runs (range in brackets):\n\n\
         | | events/s | ÷ raw read | goal |\n|---|---|---|---|\n\
         | raw read: `COPY (SELECT <the event columns> FROM events ORDER BY case_id, version) TO STDOUT`, binary, \
         into a null sink, one connection | {raw:.0} ({raw_lo:.0}–{raw_hi:.0}) | 1 | |\n\
         | chain verification (`verify_all`: two connections, hashing in Rust) | {vf:.0} ({vf_lo:.0}–{vf_hi:.0}) | \
         {:.2} | ≥ 0.5: {} |\n\
         | projection rebuild (ledger, KPI facts, rollups, indexes; `infra::ledger::rebuild`) | {rb:.0} \
         ({rb_lo:.0}–{rb_hi:.0}) | {:.2} | ≥ 0.25: {} |\n",
        sizes.last().copied().unwrap_or(0),
        vf / raw,
        judged(vf / raw, 0.5),
        rb / raw,
        judged(rb / raw, 0.25),
    ));
    write_section(out, "Queries, rebuild, verification", &body);
    println!("{body}");
}

/// Reads every event's columns as verification reads them, in its order, with `COPY … TO STDOUT`
/// into a null sink: the database's own read speed, in events per second.
async fn raw_read(db: &BenchDb) -> f64 {
    use futures_util::TryStreamExt;
    let c = connect(&db.super_url()).await;
    c.batch_execute("SET statement_timeout = 0").await.unwrap();
    let t = Instant::now();
    let stream = c
        .copy_out(&format!(
            "COPY (SELECT {} FROM events ORDER BY case_id, version) TO STDOUT (FORMAT binary)",
            infra::store::COLUMNS
        ))
        .await
        .unwrap();
    let mut bytes = 0usize;
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.try_next().await.unwrap() {
        bytes += chunk.len();
    }
    let secs = t.elapsed().as_secs_f64();
    let events: i64 = c.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0);
    eprintln!("bench: raw read of {events} events, {} MiB in {secs:.1} s", bytes / (1 << 20));
    events as f64 / secs
}

async fn pg_version(db: &BenchDb) -> String {
    let c = connect(&db.super_url()).await;
    let v: String = c.query_one("SHOW server_version", &[]).await.unwrap().get(0);
    v
}
