//! Query latencies through the real HTTP API, at several database sizes.

use std::time::Instant;

use api::settings::{DatabaseArgs, ServeArgs, VaultArgs};
use api::startup::Application;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::report::{Summary, machine, summarize, write_section};
use crate::setup::{BENCH_KEK, BenchDb, connect, seeded};

const SECRET: &str = "bench-4kXg7NR80udDq9G0SOyuf58iMROyyp5Hypz0PIwU";
const KINDS: &[&str] = &[
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
struct Pools {
    villages: Vec<String>,
    units: Vec<String>,
    cases: Vec<String>,
    campaigns: Vec<String>,
}

struct Server {
    base: String,
    client: reqwest::Client,
    token: String,
}

async fn serve(db: &BenchDb) -> Server {
    let settings = ServeArgs {
        bind: "127.0.0.1:0".parse().unwrap(),
        request_timeout_ms: 30_000,
        migrate: false,
        cors_origins: Vec::new(),
        db: DatabaseArgs {
            url: db.app().url.expose().clone(),
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
    let Pools { villages, units, cases, campaigns } = pools;
    let pick = |rng: &mut StdRng, v: &[String]| v[rng.gen_range(0..v.len())].clone();
    let json = "application/json";
    match kind {
        0 => {
            let month = rng.gen_range(1..23);
            let from = (chrono::Utc::now() - chrono::Duration::days(30 * month)).format("%Y-%m-%dT00:00:00Z");
            let to = (chrono::Utc::now() - chrono::Duration::days(30 * (month - 1))).format("%Y-%m-%dT00:00:00Z");
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
        3 => ("/api/v1/stats".into(), json),
        4 => (format!("/api/v1/cases/{}/events", pick(rng, cases)), json),
        5 => {
            // The 30 days before a random day of the generated two years, grouped every way.
            let days = rng.gen_range(0..700);
            let to = (chrono::Utc::now() - chrono::Duration::days(days)).format("%Y-%m-%dT00:00:00Z");
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
            let to = (chrono::Utc::now() - chrono::Duration::days(days)).format("%Y-%m-%dT00:00:00Z");
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

/// The latencies of each kind, and how many of its requests failed (a timeout, a 5xx): a failed
/// request counts at the time it took, so a query past the limit shows in the p95 instead of
/// stopping the run.
async fn measure(db: &BenchDb, reps: usize) -> Vec<(Summary, usize)> {
    let server = serve(db).await;
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
    let pools = Pools { villages, units, cases, campaigns };
    let mut rng = StdRng::seed_from_u64(7);
    let mut out = Vec::new();
    for kind in 0..KINDS.len() {
        let mut samples = Vec::with_capacity(reps);
        let mut variants: std::collections::BTreeMap<String, Vec<std::time::Duration>> = Default::default();
        let mut failed = 0;
        for i in 0..(reps + 20) {
            let (path, accept) = request(kind, &mut rng, &pools);
            let t = Instant::now();
            let r = server
                .client
                .get(format!("{}{path}", server.base))
                .bearer_auth(&server.token)
                .header("Accept", accept)
                .send()
                .await;
            let (ok, why) = match r {
                Ok(r) => {
                    let status = r.status();
                    match r.bytes().await {
                        Ok(_) if status.is_success() => (true, String::new()),
                        Ok(body) => {
                            (false, format!("{status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)])))
                        }
                        Err(e) => (false, format!("{status}, body unread: {e}")),
                    }
                }
                Err(e) => (false, e.to_string()),
            };
            let d = t.elapsed();
            if !ok {
                eprintln!("bench: {path} failed after {:.1} s: {why}", d.as_secs_f64());
            }
            if i >= 20 {
                samples.push(d);
                variants.entry(format!("{} {}", variant(&path), accept)).or_default().push(d);
                failed += usize::from(!ok);
            }
        }
        for (v, ds) in &variants {
            let m = summarize(ds);
            eprintln!("bench:   {v}: {} requests, p50 {:.1} / p95 {:.1} ms", ds.len(), m.p50, m.p95);
        }
        out.push((summarize(&samples), failed));
    }
    out
}

/// Measures every size, then rebuild and verification at the largest, and writes the report.
pub async fn run(sizes: &[u64], reps: usize, out: &str, command: &str, throughput: bool) {
    let started = Instant::now();
    let mut results: Vec<(u64, Vec<(Summary, usize)>)> = Vec::new();
    let mut largest = None;
    for &n in sizes {
        let db = seeded(n).await;
        eprintln!("bench: measuring queries at {n} cases");
        let measured = measure(&db, reps).await;
        for (name, (m, failed)) in KINDS.iter().zip(&measured) {
            eprintln!(
                "bench: {n} cases, {name}: p50 {:.1} / p95 {:.1} / p99 {:.1} ms, {failed} failed",
                m.p50, m.p95, m.p99
            );
        }
        results.push((n, measured));
        largest = Some(db);
    }
    let db = largest.expect("at least one size");
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
    body.push_str("| query |");
    for (n, _) in &results {
        body.push_str(&format!(" p50 / p95 / p99 at {n} (ms) |"));
    }
    body.push_str(" ratio p95 largest ÷ smallest (goal ≤ 1.5) | goal p95 at the largest | met? |\n|---|");
    for _ in &results {
        body.push_str("---|");
    }
    body.push_str("---|---|---|\n");
    for (k, name) in KINDS.iter().enumerate() {
        body.push_str(&format!("| {name} |"));
        for (_, s) in &results {
            let (m, failed) = &s[k];
            let failed = if *failed > 0 { format!(" ({failed} failed)") } else { String::new() };
            body.push_str(&format!(" {:.1} / {:.1} / {:.1}{failed} |", m.p50, m.p95, m.p99));
        }
        let first = results.first().map(|(_, s)| s[k].0.p95).unwrap_or(f64::NAN);
        let last = results.last().map(|(_, s)| s[k].0.p95).unwrap_or(f64::NAN);
        let ratio = last / first;
        let goal = GOALS[k];
        let any_failed = results.iter().any(|(_, s)| s[k].1 > 0);
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
        body.push_str(&format!(" {ratio:.2} | {} | {met} |\n", goal.map_or("—".into(), |g| format!("≤ {g} ms"))));
    }
    if !throughput {
        body.push_str("\nRebuild and verification were not measured in this run (`--throughput false`).\n");
        write_section(out, "Queries, rebuild, verification", &body);
        println!("{body}");
        return;
    }
    let (rb, rb_lo, rb_hi) = crate::report::median_spread(&rebuilds);
    let (vf, vf_lo, vf_hi) = crate::report::median_spread(&verifies);
    body.push_str(&format!(
        "\nAt {} cases ({events} events): rebuild {rb:.0} events/s (runs {rb_lo:.0}–{rb_hi:.0}; goal ≥ 50 000: {}), \
         chain verification {vf:.0} events/s (runs {vf_lo:.0}–{vf_hi:.0}; goal ≥ 200 000: {}).\n",
        sizes.last().copied().unwrap_or(0),
        if rb >= 50_000.0 { "met" } else { "**missed**" },
        if vf >= 200_000.0 { "met" } else { "**missed**" },
    ));
    write_section(out, "Queries, rebuild, verification", &body);
    println!("{body}");
}

async fn pg_version(db: &BenchDb) -> String {
    let c = connect(&db.super_url()).await;
    let v: String = c.query_one("SHOW server_version", &[]).await.unwrap().get(0);
    v
}
