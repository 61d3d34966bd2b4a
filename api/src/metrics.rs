//! Prometheus metrics: `GET /metrics` in the text format, on a listener of its own
//! (`HUIYIN_METRICS_BIND`, loopback by default), never on the API's.
//!
//! Who may read them: whoever can reach that listener, without a token. The numbers hold no
//! personal data and no case data (routes are patterns, never paths), but they do tell how busy
//! the service is and which routes fail, so the listener belongs on an address only the scraper
//! reaches (loopback, or an internal interface behind a firewall or a network policy). A separate
//! listener, rather than a loopback check on the API's: behind a reverse proxy every request
//! comes from the proxy's address, so "only from loopback" would let the whole world in; and a
//! scrape never waits behind busy API workers, never passes the API's middleware, and is not
//! itself counted as a request.
//!
//! What is measured (every name starts with `huiyin_`):
//! - `http_requests_total{route,method,status}` and `http_request_duration_seconds{route,method}`
//!   (up to the response head; a streamed body is not included). `route` is the route's pattern
//!   (`/api/v1/cases/{id}`), `(no route)` when nothing matched; status 499 counts requests whose
//!   client left before the answer.
//! - `db_pool_connections{pool}`, `db_pool_in_use{pool}`, `db_pool_waiting{pool}`,
//!   `db_pool_max{pool}`: the command pool (`main`) and the read pool (`read`: the feed, event
//!   streams, exports), read at each scrape.
//! - `event_streams_active`, `event_streams_rejected_total`, `event_stream_backoffs_total` (a
//!   stream waited for a busy database instead of ending), `feed_pages_total{source}` (pages read
//!   by `/events` or by streams), `feed_events_total` (events handed out).
//! - `exports_active`, `exports_rejected_total`, `exports_cancelled_total` (stopped because the
//!   client left), `stalled_clients_total` (a streamed response ended because its client stopped
//!   reading).
//! - `append_conflicts_total` (an append met a newer version of its case), `append_retries_total`
//!   (a command decided again after one); conflicts that ran out of retries answer 409.
//! - `requests_failed_fast_total`: answered 503 at once because the database did not answer
//!   its probe (`db_health`).
//! - `integrity_alarms_total` (alert on any increase: a broken chain or a ledger row that differs
//!   from its replay, found by the integrity watch), `integrity_events_checked_total`.
//! - `checkpoint_age_seconds`: since the newest signed checkpoint or, while there is none,
//!   since the log's first event (so "older than an hour" also fires when none was ever
//!   signed); 0 for an empty log. As last read when the lookup takes over a second.
//!
//! The metrics are process-wide (one server per process in production); tests that read them
//! compare before and after.

use std::net::TcpListener;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::{App, HttpResponse, HttpServer, web};
use infra::{Pool, StoreError};
use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// Requests by route pattern, method and status.
    pub http_requests: IntCounterVec,
    /// Time to the response head, by route pattern and method.
    pub http_duration: HistogramVec,
    pool_connections: IntGaugeVec,
    pool_in_use: IntGaugeVec,
    pool_waiting: IntGaugeVec,
    pool_max: IntGaugeVec,
    /// Event streams open now.
    pub streams_active: IntGauge,
    /// Event streams refused at capacity.
    pub streams_rejected: IntCounter,
    /// Times a stream waited for a busy database instead of ending.
    pub stream_backoffs: IntCounter,
    /// Feed pages read, by `page` (`/api/v1/events`) or `stream`.
    pub feed_pages: IntCounterVec,
    /// Feed events handed out.
    pub feed_events: IntCounter,
    /// Exports running now.
    pub exports_active: IntGauge,
    /// Exports refused at capacity.
    pub exports_rejected: IntCounter,
    /// Exports stopped because their client left.
    pub exports_cancelled: IntCounter,
    /// Appends that met a newer version of their case.
    pub append_conflicts: IntCounter,
    /// Commands decided again after a conflict.
    pub append_retries: IntCounter,
    /// Requests answered 503 at once because the database did not answer the probe.
    pub requests_failed_fast: IntCounter,
    /// Streamed responses ended because their client stopped reading.
    pub stalled_clients: IntCounter,
    /// Failures the integrity watch found (each is also an ERROR log line).
    pub integrity_alarms: IntCounter,
    /// Events the integrity watch checked.
    pub integrity_events_checked: IntCounter,
    checkpoint_age: Gauge,
    /// The newest checkpoint's time (seconds since the epoch) as last read; `i64::MIN`: none yet.
    checkpoint_at: AtomicI64,
}

/// Latency buckets, in seconds: from a cached read to the request deadline.
const LATENCY_BUCKETS: &[f64] = &[0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0];

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("a valid metric name");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric name");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("a valid metric name");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric name");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

impl Metrics {
    /// Fixed names and labels: a failure here is a bug, seen at the first start.
    fn new() -> Self {
        let r = Registry::new_custom(Some("huiyin".into()), None).expect("a valid prefix");
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "Time to the response head, by route and method")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method"],
        )
        .expect("a valid metric name");
        r.register(Box::new(http_duration.clone())).expect("registered once");
        let checkpoint_age = Gauge::new(
            "checkpoint_age_seconds",
            "Seconds since the newest signed checkpoint (none yet: since the first event; 0 for an empty log)",
        )
        .expect("a valid metric name");
        r.register(Box::new(checkpoint_age.clone())).expect("registered once");
        Self {
            http_requests: counter_vec(
                &r,
                "http_requests_total",
                "Requests by route pattern, method and status (499: the client left first)",
                &["route", "method", "status"],
            ),
            http_duration,
            pool_connections: gauge_vec(&r, "db_pool_connections", "Open connections of a pool", &["pool"]),
            pool_in_use: gauge_vec(&r, "db_pool_in_use", "Connections of a pool lent out now", &["pool"]),
            pool_waiting: gauge_vec(&r, "db_pool_waiting", "Requests waiting for a connection of a pool", &["pool"]),
            pool_max: gauge_vec(&r, "db_pool_max", "The most connections a pool opens", &["pool"]),
            streams_active: gauge(&r, "event_streams_active", "Event streams open now"),
            streams_rejected: counter(&r, "event_streams_rejected_total", "Event streams refused at capacity"),
            stream_backoffs: counter(
                &r,
                "event_stream_backoffs_total",
                "Times an event stream waited for a busy database instead of ending",
            ),
            feed_pages: counter_vec(
                &r,
                "feed_pages_total",
                "Feed pages read, by page requests or streams",
                &["source"],
            ),
            feed_events: counter(&r, "feed_events_total", "Feed events handed out"),
            exports_active: gauge(&r, "exports_active", "Ledger exports running now"),
            exports_rejected: counter(&r, "exports_rejected_total", "Ledger exports refused at capacity"),
            exports_cancelled: counter(&r, "exports_cancelled_total", "Ledger exports stopped because the client left"),
            append_conflicts: counter(&r, "append_conflicts_total", "Appends that met a newer version of their case"),
            append_retries: counter(&r, "append_retries_total", "Commands decided again after an append conflict"),
            requests_failed_fast: counter(
                &r,
                "requests_failed_fast_total",
                "Requests answered 503 at once because the database did not answer its probe",
            ),
            stalled_clients: counter(
                &r,
                "stalled_clients_total",
                "Streamed responses (event streams, CSV exports) ended because their client stopped reading",
            ),
            integrity_alarms: counter(
                &r,
                "integrity_alarms_total",
                "Broken chains and ledger rows that differ from their replay, found by the integrity watch",
            ),
            integrity_events_checked: counter(
                &r,
                "integrity_events_checked_total",
                "Events the integrity watch checked",
            ),
            checkpoint_age,
            checkpoint_at: AtomicI64::new(i64::MIN),
            registry: r,
        }
    }

    /// Counts one answered request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        self.http_requests.with_label_values(&[route, method, &status.to_string()]).inc();
        self.http_duration.with_label_values(&[route, method]).observe(elapsed.as_secs_f64());
    }

    fn observe_pool(&self, name: &str, pool: &Pool) {
        let s = pool.status();
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.pool_connections.with_label_values(&[name]).set(as_i64(s.size));
        self.pool_in_use.with_label_values(&[name]).set(as_i64(s.size.saturating_sub(s.available)));
        self.pool_waiting.with_label_values(&[name]).set(as_i64(s.waiting));
        self.pool_max.with_label_values(&[name]).set(as_i64(s.max_size));
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_default()
    }
}

/// A method as a label: the standard ones by name, anything else as `OTHER` (a client may send
/// any token as a method; labels must stay few).
fn method_label(m: &str) -> &'static str {
    match m {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

/// One line per counter in `service::execute`'s retry loop: a new attempt at a command (any
/// after the first is a retry).
pub fn append_attempt(attempt: u32) {
    if attempt > 0 {
        metrics().append_retries.inc();
    }
}

/// One line per counter in `service::execute`'s retry loop: the outcome of an append (a
/// conflict is counted).
pub fn append_outcome<T>(r: &Result<T, StoreError>) {
    if matches!(r, Err(StoreError::Conflict { .. })) {
        metrics().append_conflicts.inc();
    }
}

/// What a scrape reads besides the counters.
struct Sources {
    main: Pool,
    read: Pool,
}

/// How long a scrape waits for the newest checkpoint; past it the last known time is used.
const CHECKPOINT_LOOKUP: Duration = Duration::from_secs(1);

async fn scrape(sources: web::Data<Sources>) -> HttpResponse {
    let m = metrics();
    m.observe_pool("main", &sources.main);
    m.observe_pool("read", &sources.read);
    match tokio::time::timeout(CHECKPOINT_LOOKUP, infra::integrity::vouched_since(&sources.read)).await {
        Ok(Ok(Some(at))) => m.checkpoint_at.store(at.timestamp_millis(), Ordering::Relaxed),
        // An empty log: nothing waits for a checkpoint.
        Ok(Ok(None)) => m.checkpoint_at.store(i64::MIN, Ordering::Relaxed),
        _ => {}
    }
    let at = m.checkpoint_at.load(Ordering::Relaxed);
    let age =
        if at == i64::MIN { 0.0 } else { (chrono::Utc::now().timestamp_millis().saturating_sub(at)) as f64 / 1000.0 };
    m.checkpoint_age.set(age);
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, prometheus::TEXT_FORMAT))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(m.render())
}

/// The metrics server on its own listener: `GET /metrics` and nothing else. One worker, no
/// signal handling of its own (the application stops it with the API server).
pub fn server(listener: TcpListener, main: Pool, read: Pool) -> std::io::Result<Server> {
    let sources = web::Data::new(Sources { main, read });
    Ok(HttpServer::new(move || App::new().app_data(sources.clone()).route("/metrics", web::get().to(scrape)))
        .workers(1)
        .disable_signals()
        .tcp_nodelay(true)
        .listen(listener)?
        .run())
}
