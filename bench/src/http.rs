//! HTTP commands through the real server (a separate `huiyin serve` process) at 32 connections,
//! against a minimal actix-web handler doing the raw insert (also its own process), with a Rust
//! load generator; latency percentiles and the servers' peak RSS.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::report::{Summary, summarize};
use crate::setup::url_with;

const SECRET: &str = "bench-http-GhVDb05PfXmfwLLbpa9xeMR0bXCkp3znh5R5aSuM";

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

/// Starts `huiyin serve` on the database.
pub async fn start_huiyin(app_url: &str, owner_url: &str) -> Server {
    let exe = std::env::current_exe().unwrap().with_file_name("huiyin");
    assert!(exe.exists(), "build the server first: cargo build --release -p api --bin huiyin");
    let port = free_port();
    let child = Command::new(exe)
        .arg("serve")
        .env("DATABASE_URL", app_url)
        .env("HUIYIN_ADMIN_DATABASE_URL", owner_url)
        .env("HUIYIN_BIND", format!("127.0.0.1:{port}"))
        // Any free port: the metrics listener must not collide with another server's.
        .env("HUIYIN_METRICS_BIND", "127.0.0.1:0")
        .env("HUIYIN_JWT_SECRET", SECRET)
        .env("HUIYIN_KEK", "0b73a0f9352fa583a908b31ff7228c54125a3fbdec2a8600a93dc00ce8fce969")
        .env("HUIYIN_POOL_SIZE", "32")
        .env("HUIYIN_LOG", "warn")
        .env_remove("HUIYIN_CHECKPOINT_PRIVATE_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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

/// The raw baseline: POST /raw inserts the JSON body as one row, like an event, and answers 201.
pub async fn raw_server(port: u16, url: &str) {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let mut settings = infra::DbSettings::new(url.to_owned());
    settings.pool_size = 32;
    let pool = web::Data::new(settings.pool().unwrap());
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
    HttpServer::new(move || {
        App::new()
            .app_data(pool.clone())
            .route("/healthz", web::get().to(|| async { HttpResponse::Ok().finish() }))
            .route("/raw", web::post().to(insert))
    })
    .bind(("127.0.0.1", port))
    .unwrap()
    .run()
    .await
    .unwrap();
}

/// What one load run measured.
pub struct Load {
    /// Completed operations per second (median of the windows).
    pub rate: (f64, f64, f64),
    /// Latency of single requests.
    pub latency: Summary,
}

/// Runs `op` from `conns` tasks: a warm-up window, then `reps` windows.
pub async fn load<F, Fut>(conns: usize, window: Duration, reps: usize, op: F) -> Load
where
    F: Fn(reqwest::Client, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Vec<Duration>> + Send,
{
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(conns).build().unwrap();
    let op = Arc::new(op);
    let mut rates = Vec::new();
    let mut samples = Vec::new();
    for rep in 0..=reps {
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
        let w = if rep == 0 { window / 2 } else { window };
        let t = Instant::now();
        tokio::time::sleep(w).await;
        stop.store(true, Ordering::Relaxed);
        let mut ops = 0;
        let mut lat = Vec::new();
        for h in handles {
            let (o, l) = h.await.unwrap();
            ops += o;
            lat.extend(l);
        }
        if rep > 0 {
            rates.push(ops as f64 / t.elapsed().as_secs_f64());
            samples.extend(lat);
        }
    }
    Load { rate: crate::report::median_spread(&rates), latency: summarize(&samples) }
}

/// Results of the HTTP benchmark.
pub struct HttpResults {
    pub raw: Load,
    pub register: Load,
    pub lifecycle: Load,
    pub raw_rss: f64,
    pub huiyin_rss: f64,
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

/// Runs the HTTP benchmark.
pub async fn run(conns: usize, window: Duration, reps: usize) -> HttpResults {
    let Fixture { app_url, owner_url, unit, token } = Fixture::new("huiyin_bench_http").await;
    let raw_server = start_raw(&app_url).await;
    let base = raw_server.base.clone();
    let raw = load(conns, window, reps, move |c, _| {
        let url = format!("{base}/raw");
        async move {
            let t = Instant::now();
            let r = c.post(url).json(&case_body()).send().await.unwrap();
            assert!(r.status().is_success());
            let _ = r.bytes().await;
            vec![t.elapsed()]
        }
    })
    .await;
    let raw_rss = raw_server.peak_rss_mib();
    drop(raw_server);
    eprintln!("bench: http raw {:.0}/s", raw.rate.0);

    let server = start_huiyin(&app_url, &owner_url).await;
    let base = server.base.clone();
    let tok = token.clone();
    let register = load(conns, window, reps, move |c, _| {
        let url = format!("{base}/api/v1/cases");
        let tok = tok.clone();
        async move {
            let t = Instant::now();
            let r = c.post(url).bearer_auth(tok.as_str()).json(&case_body()).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 201);
            let _ = r.bytes().await;
            vec![t.elapsed()]
        }
    })
    .await;
    eprintln!("bench: http register {:.0}/s", register.rate.0);
    let base = server.base.clone();
    let tok = token.clone();
    let lifecycle = load(conns, window, reps, move |c, _| {
        let (base, tok) = (base.clone(), tok.clone());
        async move {
            let (lat, failed) = lifecycle(&c, &base, &tok, unit).await;
            assert_eq!(failed, None, "a lifecycle request failed");
            lat
        }
    })
    .await;
    eprintln!("bench: http lifecycle {:.0}/s", lifecycle.rate.0);
    let huiyin_rss = server.peak_rss_mib();
    drop(server);
    let _ = url_with;
    HttpResults { raw, register, lifecycle, raw_rss, huiyin_rss }
}
