//! HTTP commands through the real server (a separate `huiyin serve` process) at 32 connections,
//! against a minimal actix-web handler doing the raw insert (also its own process), with a Rust
//! load generator; latency percentiles and the servers' peak RSS.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::report::{Summary, summarize};

/// The benchmark servers' HS256 secret (the HTTP and the query servers).
pub const SECRET: &str = "bench-http-GhVDb05PfXmfwLLbpa9xeMR0bXCkp3znh5R5aSuM";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server process, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Resident memory now (VmRSS) in MiB.
    pub fn rss_mib(&self) -> f64 {
        self.status_mib("VmRSS")
    }

    /// Peak resident memory (VmHWM) in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.status_mib("VmHWM")
    }

    /// Starts a new peak: VmHWM is set back to the current RSS (`clear_refs` 5), so a later
    /// [`Self::peak_rss_mib`] is the peak of what ran since.
    pub fn reset_peak_rss(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }

    /// A `kB` line of the process's /proc status, in MiB (NaN when the process is gone).
    fn status_mib(&self, field: &str) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
            })
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }
}

async fn wait_ready(base: &str) {
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..200 {
        if c.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server at {base} did not start");
}

/// Starts `huiyin serve` on the database, as the HTTP benchmark runs it: the shipped settings,
/// so its pool is the shipped 16 connections (the raw server's too).
pub async fn start_huiyin(app_url: &str, owner_url: &str) -> Server {
    start_huiyin_with(
        app_url,
        Some(owner_url),
        &[
            ("HUIYIN_JWT_SECRET", SECRET.to_owned()),
            ("HUIYIN_KEK", "0b73a0f9352fa583a908b31ff7228c54125a3fbdec2a8600a93dc00ce8fce969".to_owned()),
        ],
    )
    .await
}

/// Starts `huiyin serve` (the release binary beside this one) on `app_url`, with the shipped
/// defaults except `settings`. The caller's environment is dropped (but `PATH`), so a
/// `HUIYIN_*` variable of the shell (coalesced appends, a checkpoint key, a pool size) cannot
/// change what is measured: appends are coalesced with two batch writers, as it ships. With `owner_url` the server
/// migrates on start (a no-op on a migrated database); without, it does not (a standby is
/// read-only). Killed on drop.
pub async fn start_huiyin_with(app_url: &str, owner_url: Option<&str>, settings: &[(&str, String)]) -> Server {
    let exe = std::env::current_exe().unwrap().with_file_name("huiyin");
    assert!(exe.exists(), "build the server first: cargo build --release -p api --bin huiyin");
    let port = free_port();
    let mut cmd = Command::new(exe);
    cmd.arg("serve").env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("DATABASE_URL", app_url)
        .env("HUIYIN_BIND", format!("127.0.0.1:{port}"))
        // Any free port: the metrics listener must not collide with another server's.
        .env("HUIYIN_METRICS_BIND", "127.0.0.1:0");
    match owner_url {
        Some(owner) => cmd.env("HUIYIN_ADMIN_DATABASE_URL", owner),
        None => cmd.env("HUIYIN_MIGRATE_ON_START", "false"),
    };
    for (k, v) in settings {
        cmd.env(k, v);
    }
    // `HUIYIN_BENCH_SERVER_LOG`: the servers' logs are appended to this file (else dropped).
    let log = || match std::env::var_os("HUIYIN_BENCH_SERVER_LOG") {
        Some(path) => Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap()),
        None => Stdio::null(),
    };
    let child = cmd.stdout(log()).stderr(log()).spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base).await;
    Server { child, base }
}

/// Starts the raw baseline server (this binary's `raw-server`).
pub async fn start_raw(app_url: &str) -> Server {
    let port = free_port();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["raw-server", "--port", &port.to_string(), "--database-url", app_url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base).await;
    Server { child, base }
}

/// The raw baselines, one process: `POST /raw` inserts the JSON body as one row, like an event,
/// and answers 201; `POST /raw-checked` does what any real handler must before that: verifies
/// the bearer token (HS256, issuer, audience, expiry, as the service's settings say), parses and
/// validates the body into a typed value (known fields only, the enumerations, lengths in
/// characters, the phone's digits), and inserts it into a table of the events' shape (unique
/// `(case_id, version)`, the feed index, checks) with its SHA-256 chained to a zero head.
pub async fn raw_server(port: u16, url: &str) {
    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    // The shipped pool size (`DbSettings`' default, 16), as Huiyin's.
    let pool = web::Data::new(infra::DbSettings::new(url.to_owned()).pool().unwrap());
    async fn insert(pool: web::Data<deadpool_postgres::Pool>, body: web::Json<serde_json::Value>) -> HttpResponse {
        let client = pool.get().await.unwrap();
        let stmt = client
            .prepare_cached(
                "INSERT INTO raw_events (case_id, version, event_type, payload, metadata, occurred_at, hash) \
                 VALUES ($1, 1, 'raw', $2, '{}', now(), '\\x00') RETURNING position",
            )
            .await
            .unwrap();
        let id = uuid::Uuid::new_v4();
        let row = client.query_one(&stmt, &[&id, &body.into_inner()]).await.unwrap();
        HttpResponse::Created().json(json!({ "id": id, "position": row.get::<_, i64>(0) }))
    }
    let key = web::Data::new(jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()));
    async fn checked(
        req: HttpRequest,
        pool: web::Data<deadpool_postgres::Pool>,
        key: web::Data<jsonwebtoken::DecodingKey>,
        body: web::Json<RawCase>,
    ) -> HttpResponse {
        let token =
            req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_issuer(&["huiyin"]);
        validation.set_audience(&["huiyin-api"]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let verified = token.map(|t| jsonwebtoken::decode::<serde_json::Value>(t, &key, &validation));
        if !matches!(verified, Some(Ok(_))) {
            return HttpResponse::Unauthorized().finish();
        }
        let case = body.into_inner();
        if let Err(why) = case.validate() {
            return HttpResponse::UnprocessableEntity().json(json!({ "detail": why }));
        }
        let payload = serde_json::to_value(&case).unwrap();
        let prev = [0u8; 32];
        let hash: [u8; 32] = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(prev);
            h.update(serde_json::to_vec(&payload).unwrap());
            h.finalize().into()
        };
        let client = pool.get().await.unwrap();
        let stmt = client
            .prepare_cached(
                "INSERT INTO shaped_events (case_id, version, event_type, schema_version, payload, metadata, \
                   occurred_at, prev_hash, hash) VALUES ($1, 1, 'case.received', 1, $2, '{}', now(), $3, $4) \
                 RETURNING position",
            )
            .await
            .unwrap();
        let id = uuid::Uuid::new_v4();
        let row = client.query_one(&stmt, &[&id, &payload, &prev.as_slice(), &hash.as_slice()]).await.unwrap();
        HttpResponse::Created().json(json!({ "id": id, "position": row.get::<_, i64>(0) }))
    }
    HttpServer::new(move || {
        App::new()
            .app_data(pool.clone())
            .app_data(key.clone())
            .route("/healthz", web::get().to(|| async { HttpResponse::Ok().finish() }))
            .route("/raw", web::post().to(insert))
            .route("/raw-checked", web::post().to(checked))
    })
    // As Huiyin's server (`api::startup`): the same socket options on both sides.
    .tcp_nodelay(true)
    .bind(("127.0.0.1", port))
    .unwrap()
    .run()
    .await
    .unwrap();
}

/// The checked baseline's body: the fields the benchmark's registration sends.
#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    channel: String,
    kind: String,
    title: String,
    description: String,
    complainant: RawComplainant,
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawComplainant {
    name: String,
    phone: String,
}

impl RawCase {
    /// The checks a registration's body needs at least (lengths in characters).
    fn validate(&self) -> Result<(), &'static str> {
        let chars = |s: &str, lo: usize, hi: usize| (lo..=hi).contains(&s.chars().count());
        if !["phone", "visit", "letter", "web", "meeting", "card", "questionnaire"].contains(&self.channel.as_str()) {
            return Err("channel");
        }
        if !["complaint", "suggestion", "opinion", "accusation", "inquiry"].contains(&self.kind.as_str()) {
            return Err("kind");
        }
        if !chars(&self.title, 1, 200) || !chars(&self.description, 1, 10_000) || !chars(&self.complainant.name, 1, 100)
        {
            return Err("length");
        }
        let p = &self.complainant.phone;
        if !(p.len() == 11 && p.bytes().all(|b| b.is_ascii_digit())) {
            return Err("phone");
        }
        Ok(())
    }
}

/// What one system measured in the closed loop, over every window.
#[derive(Default)]
pub struct Load {
    /// Completed operations per second in each measured window, in order.
    pub rates: Vec<f64>,
    samples: Vec<Duration>,
    /// Huiyin's peak RSS during this system's measured windows, MiB (whichever server served it;
    /// the raw systems' windows show what Huiyin holds while idle).
    pub huiyin_peak_rss: f64,
}

impl Load {
    /// Median and range of the windows' rates.
    pub fn rate(&self) -> (f64, f64, f64) {
        crate::report::median_spread(&self.rates)
    }

    /// Latency of single requests over every window.
    pub fn latency(&self) -> Summary {
        summarize(&self.samples)
    }
}

/// Runs `op` from `conns` tasks: a warm-up of half a window, then `reps` windows.
pub async fn load<F, Fut>(conns: usize, window: Duration, reps: usize, op: F) -> Load
where
    F: Fn(reqwest::Client, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Vec<Duration>> + Send,
{
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(conns).build().unwrap();
    let op = Arc::new(op);
    let _ = one_window(&client, conns, window / 2, &op).await;
    let mut out = Load::default();
    for _ in 0..reps {
        let (rate, lat) = one_window(&client, conns, window, &op).await;
        out.rates.push(rate);
        out.samples.extend(lat);
    }
    out
}

/// Runs `op` from `conns` tasks for one window: operations per second, and every latency.
async fn one_window<F, Fut>(
    client: &reqwest::Client,
    conns: usize,
    window: Duration,
    op: &Arc<F>,
) -> (f64, Vec<Duration>)
where
    F: Fn(reqwest::Client, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Vec<Duration>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for i in 0..conns {
        let (client, stop, op) = (client.clone(), stop.clone(), op.clone());
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut ops = 0u64;
            while !stop.load(Ordering::Relaxed) {
                lat.extend(op(client.clone(), i).await);
                ops += 1;
            }
            (ops, lat)
        }));
    }
    let t = Instant::now();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let mut ops = 0;
    let mut lat = Vec::new();
    for h in handles {
        let (o, l) = h.await.unwrap();
        ops += o;
        lat.extend(l);
    }
    (ops as f64 / t.elapsed().as_secs_f64(), lat)
}

/// An open-loop load: requests start on a fixed schedule (`rate` per second for `window`, after
/// a warm-up of half that), whether or not earlier ones have answered, so a slow answer cannot
/// hold back the next request (no coordinated omission). Each latency runs from the request's
/// scheduled start to its answer, so queueing in the generator counts too.
#[derive(Default)]
pub struct OpenLoop {
    /// The schedule's rate, per second.
    pub rate: f64,
    /// Requests scheduled in the measured windows and answered.
    pub answered: usize,
    /// The measured windows' length, in seconds.
    pub seconds: f64,
    /// Requests that failed or took over 10 s.
    pub failed: usize,
    samples: Vec<Duration>,
}

impl OpenLoop {
    /// Latency from scheduled start to answer.
    pub fn latency(&self) -> Summary {
        summarize(&self.samples)
    }

    /// Answered requests per second of the schedule (those scheduled in the measured windows).
    pub fn achieved(&self) -> f64 {
        self.answered as f64 / self.seconds
    }

    fn absorb(&mut self, other: OpenLoop) {
        self.rate = other.rate;
        self.answered += other.answered;
        self.seconds += other.seconds;
        self.failed += other.failed;
        self.samples.extend(other.samples);
    }
}

/// Runs `op` on a fixed schedule of `rate` per second (see [`OpenLoop`]).
pub async fn open_loop<F, Fut>(rate: f64, window: Duration, op: &Arc<F>) -> OpenLoop
where
    F: Fn(reqwest::Client) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(512).build().unwrap();
    let warm = window / 2;
    let total = warm + window;
    let n = (total.as_secs_f64() * rate).ceil() as usize;
    let start = tokio::time::Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let (client, op) = (client.clone(), op.clone());
        handles.push(tokio::spawn(async move {
            let ok = tokio::time::timeout(Duration::from_secs(10), op(client)).await.unwrap_or(false);
            (due, ok, due.elapsed())
        }));
    }
    let mut out = OpenLoop { rate, seconds: window.as_secs_f64(), ..Default::default() };
    let measured_from = start + warm;
    for h in handles {
        let (due, ok, took) = h.await.unwrap();
        if due < measured_from {
            continue;
        }
        if ok {
            out.answered += 1;
            out.samples.push(took);
        } else {
            out.failed += 1;
        }
    }
    out
}

/// Results of the HTTP benchmark.
pub struct HttpResults {
    /// The minimal raw insert, closed loop.
    pub raw: Load,
    /// The raw insert with token verification, body validation and a hash, closed loop.
    pub raw_checked: Load,
    pub register: Load,
    pub lifecycle: Load,
    /// Per round, registrations per second ÷ the checked raw handler's in the same round.
    pub paired: Vec<f64>,
    /// Open loop at half Huiyin's closed-loop registration rate: the checked raw handler, and
    /// `POST /api/v1/cases`, two windows each in the order raw, Huiyin, Huiyin, raw.
    pub open_raw_checked: OpenLoop,
    pub open_register: OpenLoop,
    pub raw_rss: f64,
    /// Huiyin's peak RSS over the whole run, MiB: the larger of the two phases' peaks below.
    pub huiyin_rss: f64,
    /// Huiyin's peak RSS during the closed loops (every system's windows, lifecycles included), MiB.
    pub huiyin_rss_closed: f64,
    /// Huiyin's peak RSS during the open loop alone, MiB.
    pub huiyin_rss_open: f64,
    /// The cores of this machine: actix-web's default worker count, which both servers keep.
    pub workers: usize,
    /// The server settings Huiyin's connections see.
    pub settings: String,
}

fn case_body() -> serde_json::Value {
    json!({
        "channel": "phone", "kind": "complaint", "title": "村口路灯损坏",
        "description": "村口路灯损坏三个月无人修，夜间出行不便，多次反映无人处理。",
        "complainant": {"name": "张三", "phone": "13812345678"}
    })
}

/// The token settings of a benchmark server: HS256 with `secret`, the shipped issuer, audience
/// and lifetime cap.
pub fn auth_args(secret: &str) -> api::settings::AuthArgs {
    api::settings::AuthArgs {
        jwt_secret: Some(secret.into()),
        jwt_private_key: None,
        jwt_public_key: None,
        issuer: "huiyin".into(),
        audience: "huiyin-api".into(),
        max_ttl_s: api::settings::DEFAULT_JWT_MAX_TTL_S,
    }
}

/// A fresh benchmark database with a village and a supervisor's token.
pub struct Fixture {
    pub app_url: String,
    pub owner_url: String,
    /// The unit cases are assigned to.
    pub unit: uuid::Uuid,
    /// A supervisor's bearer token (two hours).
    pub token: Arc<String>,
}

impl Fixture {
    pub async fn new(db: &str) -> Self {
        let (app_url, owner_url) = crate::append::fresh_db(db).await;
        let reference = infra::reference::ReferenceData::new(infra::DbSettings::new(app_url.clone()).pool().unwrap());
        let unit = reference.create_unit("东岭村", domain::UnitKind::Village, None).await.unwrap().id.as_uuid();
        let auth = api::auth::Authenticator::from_settings(&auth_args(SECRET)).unwrap();
        let token = Arc::new(
            auth.sign("bench-supervisor", domain::Role::Supervisor, None, chrono::Duration::hours(2)).unwrap(),
        );
        Self { app_url, owner_url, unit, token }
    }
}

/// One case's lifecycle (register → assign → handle → feedback → close): the latency of each of
/// its five requests, and the first failure (`"<step> <status>"`, or `"<step> io"` for a request
/// that got no answer), after which it stops.
pub async fn lifecycle(
    c: &reqwest::Client,
    base: &str,
    tok: &str,
    unit: uuid::Uuid,
) -> (Vec<Duration>, Option<String>) {
    let mut lat = Vec::with_capacity(5);
    let t = Instant::now();
    let r = match c.post(format!("{base}/api/v1/cases")).bearer_auth(tok).json(&case_body()).send().await {
        Ok(r) => r,
        Err(_) => return (lat, Some("register io".into())),
    };
    if r.status().as_u16() != 201 {
        return (lat, Some(format!("register {}", r.status().as_u16())));
    }
    let Ok(v) = r.json::<serde_json::Value>().await else { return (lat, Some("register io".into())) };
    lat.push(t.elapsed());
    let id = v["id"].as_str().unwrap_or_default().to_owned();
    for (action, body) in [
        ("assign", json!({"unit_id": unit})),
        ("handle", json!({"outcome": "resolved", "result": "已修复路灯"})),
        ("feedback", json!({"method": "phone", "content": "已电话告知"})),
        ("close", json!({"note": "群众已知悉处理结果，办结归档"})),
    ] {
        let t = Instant::now();
        let r = match c.post(format!("{base}/api/v1/cases/{id}/{action}")).bearer_auth(tok).json(&body).send().await {
            Ok(r) => r,
            Err(_) => return (lat, Some(format!("{action} io"))),
        };
        let status = r.status().as_u16();
        let _ = r.bytes().await;
        if status != 200 {
            return (lat, Some(format!("{action} {status}")));
        }
        lat.push(t.elapsed());
    }
    (lat, None)
}

/// A `CHECKPOINT` of the cluster, so no window pays for the last one's dirty pages.
async fn checkpoint() {
    let base = crate::setup::base_url();
    let c = crate::setup::connect(&crate::setup::url_with(&base, "postgres", "postgres")).await;
    c.batch_execute("CHECKPOINT").await.unwrap();
}

/// Runs the HTTP benchmark: both servers up at once; a warm-up round, then `reps` rounds of one
/// `window` per system, the systems' order rotating by one place per round and a `CHECKPOINT`
/// before every window; then the open loop.
pub async fn run(conns: usize, window: Duration, reps: usize) -> HttpResults {
    let Fixture { app_url, owner_url, unit, token } = Fixture::new("huiyin_bench_http").await;
    let raw_server = start_raw(&app_url).await;
    let server = start_huiyin(&app_url, &owner_url).await;
    let post = |url: String, tok: Option<Arc<String>>| {
        Arc::new(move |c: reqwest::Client, _| {
            let (url, tok) = (url.clone(), tok.clone());
            async move {
                let t = Instant::now();
                let mut req = c.post(url).json(&case_body());
                if let Some(tok) = tok {
                    req = req.bearer_auth(tok.as_str());
                }
                let r = req.send().await.unwrap();
                assert_eq!(r.status().as_u16(), 201);
                let _ = r.bytes().await;
                vec![t.elapsed()]
            }
        })
    };
    let raw_op = post(format!("{}/raw", raw_server.base), None);
    let checked_op = post(format!("{}/raw-checked", raw_server.base), Some(token.clone()));
    let register_op = post(format!("{}/api/v1/cases", server.base), Some(token.clone()));
    let (base, tok) = (server.base.clone(), token.clone());
    let lifecycle_op = Arc::new(move |c: reqwest::Client, _| {
        let (base, tok) = (base.clone(), tok.clone());
        async move {
            let (lat, failed) = lifecycle(&c, &base, &tok, unit).await;
            assert_eq!(failed, None, "a lifecycle request failed");
            lat
        }
    });
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(conns).build().unwrap();
    let mut loads: [Load; 4] = Default::default();
    let mut huiyin_rss_closed = 0f64;
    for round in 0..=reps {
        // Round 0 warms every system up (half a window each) and is not counted.
        let w = if round == 0 { window / 2 } else { window };
        for j in 0..4 {
            let system = (j + round) % 4;
            checkpoint().await;
            server.reset_peak_rss();
            // A line per window, so a profiler can be started on one system's load.
            eprintln!(
                "bench: http round {round}, window of {} starts ({:.0} s)",
                ["raw", "checked", "register", "lifecycle"][system],
                w.as_secs_f64()
            );
            let (rate, lat) = match system {
                0 => one_window(&client, conns, w, &raw_op).await,
                1 => one_window(&client, conns, w, &checked_op).await,
                2 => one_window(&client, conns, w, &register_op).await,
                _ => one_window(&client, conns, w, &lifecycle_op).await,
            };
            huiyin_rss_closed = huiyin_rss_closed.max(server.peak_rss_mib());
            if round > 0 {
                loads[system].rates.push(rate);
                loads[system].samples.extend(lat);
                loads[system].huiyin_peak_rss = loads[system].huiyin_peak_rss.max(server.peak_rss_mib());
            }
        }
        if round > 0 {
            eprintln!(
                "bench: http round {round}: raw {:.0}/s, checked {:.0}/s, register {:.0}/s, lifecycle {:.0}/s",
                loads[0].rates[round - 1],
                loads[1].rates[round - 1],
                loads[2].rates[round - 1],
                loads[3].rates[round - 1]
            );
        }
    }
    eprintln!(
        "bench: Huiyin's peak RSS in the windows of raw {:.0}, checked {:.0}, register {:.0}, lifecycle {:.0} MiB",
        loads[0].huiyin_peak_rss, loads[1].huiyin_peak_rss, loads[2].huiyin_peak_rss, loads[3].huiyin_peak_rss
    );
    let [raw, raw_checked, register, lifecycle] = loads;
    let paired = register.rates.iter().zip(&raw_checked.rates).map(|(h, r)| h / r).collect();

    server.reset_peak_rss();

    // Open loop: the same fixed rate for both, half what Huiyin sustained in the closed loop.
    let rate = (register.rate().0 / 2.0).max(1.0);
    let one = |url: String, tok: Arc<String>| {
        Arc::new(move |c: reqwest::Client| {
            let (url, tok) = (url.clone(), tok.clone());
            async move {
                match c.post(url).bearer_auth(tok.as_str()).json(&case_body()).send().await {
                    Ok(r) => r.status().as_u16() == 201 && r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
    };
    let open_raw = one(format!("{}/raw-checked", raw_server.base), token.clone());
    let open_hui = one(format!("{}/api/v1/cases", server.base), token.clone());
    let (mut open_raw_checked, mut open_register) = (OpenLoop::default(), OpenLoop::default());
    for huiyin_first in [false, true] {
        for huiyin in [huiyin_first, !huiyin_first] {
            checkpoint().await;
            if huiyin {
                open_register.absorb(open_loop(rate, window, &open_hui).await);
            } else {
                open_raw_checked.absorb(open_loop(rate, window, &open_raw).await);
            }
        }
    }
    eprintln!(
        "bench: open loop at {rate:.0}/s: raw checked p99 {:.1} ms, register p99 {:.1} ms",
        open_raw_checked.latency().p99,
        open_register.latency().p99
    );
    let raw_rss = raw_server.peak_rss_mib();
    let huiyin_rss_open = server.peak_rss_mib();
    let huiyin_rss = huiyin_rss_closed.max(huiyin_rss_open);
    eprintln!(
        "bench: Huiyin's peak RSS {huiyin_rss_closed:.0} MiB in the closed loops, {huiyin_rss_open:.0} MiB in the open loop"
    );
    drop(server);
    drop(raw_server);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let settings = crate::append::pool_settings(&app_url).await;
    HttpResults {
        raw,
        raw_checked,
        register,
        lifecycle,
        paired,
        open_raw_checked,
        open_register,
        raw_rss,
        huiyin_rss,
        huiyin_rss_closed,
        huiyin_rss_open,
        workers,
        settings,
    }
}
