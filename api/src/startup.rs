//! Building the application: it binds its own listener, so tests can ask for port 0 and read
//! [`Application::port`].

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use infra::reference::ReferenceData;
use infra::{EventStore, Pool};
use utoipa::OpenApi as _;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::Authenticator;
use crate::http_semantics;
use crate::middleware::{self, Capacity, MAX_JSON_BYTES, RequestTimeout};
use crate::openapi::ApiDoc;
use crate::routes;
use crate::settings::ServeArgs;

/// Shared state of every request.
#[derive(Clone)]
pub struct AppState {
    /// The event store.
    pub store: EventStore,
    /// The pool, for reads.
    pub pool: Pool,
    /// Units, categories, calendar.
    pub reference: ReferenceData,
    /// Personal data.
    pub vault: infra::vault::Vault,
    /// The ledger projection.
    pub ledger: infra::ledger::Ledger,
    /// KPIs and trends over the ledger.
    pub analysis: infra::analysis::Analysis,
    /// The supervision rules' thresholds (manual items use the response days).
    pub supervision_rules: domain::records::supervision::Rules,
    /// Signs checkpoints, when a key is configured.
    pub signer: Option<Arc<infra::integrity::Signer>>,
    /// The integrity watch's status (see `infra::watch`).
    pub watch: Arc<tokio::sync::Mutex<infra::watch::WatchStatus>>,
    /// Wakes the event streams: new events may be visible.
    pub feed_wake: Arc<tokio::sync::Notify>,
    /// Told after every append of this process (drives the NOTIFY to other instances).
    pub appended: Arc<tokio::sync::Notify>,
    /// Told when a calendar year is loaded or corrected: wakes the background recount of the
    /// open deadlines it moves (a `PUT /calendar` answers without waiting for it).
    pub calendar_changed: Arc<tokio::sync::Notify>,
    /// How long a retried reveal shows the identity again (`HUIYIN_REVEAL_REPLAY_S`).
    pub reveal_replay: chrono::Duration,
    /// Whether webhook URLs may name non-public addresses (`HUIYIN_WEBHOOK_ALLOW_PRIVATE`).
    pub webhook_allow_private: bool,
    /// How a report's replay connects (the service's role, one connection per replay:
    /// [`infra::replay`]).
    pub replay_db: infra::db::DbSettings,
}

impl AppState {
    /// The same state reading (and appending) through `pool`: the read pool of streams and
    /// exports, or a replay's projections ([`infra::replay`]).
    pub fn through(&self, pool: Pool) -> Self {
        Self {
            store: EventStore::new(pool.clone()),
            ledger: infra::ledger::Ledger::new(pool.clone()),
            analysis: infra::analysis::Analysis::new(pool.clone()),
            pool,
            ..self.clone()
        }
    }
}

/// Why the application could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A setting is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// Migrations failed.
    #[error(transparent)]
    Migrate(#[from] infra::migrate::MigrateError),
    /// The database setup failed.
    #[error(transparent)]
    Store(#[from] infra::StoreError),
    /// Binding failed.
    #[error("binding the listener")]
    Io(#[from] std::io::Error),
}

/// A built, not yet running, application.
pub struct Application {
    port: u16,
    server: Server,
    metrics_port: u16,
    metrics: Server,
}

impl Application {
    /// Migrates (if asked), connects and binds.
    pub async fn build(settings: ServeArgs) -> Result<Self, StartupError> {
        let auth = Arc::new(Authenticator::from_settings(&settings.auth).map_err(StartupError::Config)?);
        http_semantics::check_origins(&settings.cors_origins).map_err(StartupError::Config)?;
        let vault = settings.vault.vault().map_err(StartupError::Config)?;
        if settings.migrate {
            let applied = infra::migrate::run(&settings.db.admin()).await?;
            tracing::info!(migrations.applied = applied.len(), "migrations applied");
        }
        // A migration that added a column computed from the events marks the ledger for a
        // rebuild; it runs beside the service (which serves meanwhile) and is done once.
        // (On a thread of its own: the rebuild's fold is not `Send`.)
        let owner = settings.db.admin();
        std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return tracing::error!(error = %e, "no runtime for the ledger rebuild"),
            };
            match rt.block_on(infra::ledger::rebuild_if_due(&owner)) {
                Ok(Some(r)) => tracing::info!(cases = r.folded.cases, "the ledger was rebuilt, as a migration asked"),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "the ledger rebuild a migration asked for failed; run `huiyin rebuild`")
                }
            }
        });
        let pool = settings.db.app().pool()?;
        let signer = match &settings.checkpoints.private_key {
            Some(path) => {
                let pem = crate::settings::read_key_pem("HUIYIN_CHECKPOINT_PRIVATE_KEY", path)
                    .map_err(StartupError::Config)?;
                let signer = infra::integrity::Signer::from_pem(&pem, settings.checkpoints.key_id.clone())
                    .map_err(|e| StartupError::Config(format!("HUIYIN_CHECKPOINT_PRIVATE_KEY: {e}")))?;
                Some(Arc::new(signer))
            }
            None => {
                tracing::warn!("no HUIYIN_CHECKPOINT_PRIVATE_KEY: signed checkpoints are off");
                None
            }
        };
        let mut replay_db = settings.db.app();
        replay_db.application_name = "huiyin-replay".into();
        let state = AppState {
            replay_db,
            webhook_allow_private: settings.public.webhook_allow_private,
            signer,
            feed_wake: Arc::new(tokio::sync::Notify::new()),
            watch: Arc::default(),
            appended: Arc::new(tokio::sync::Notify::new()),
            calendar_changed: Arc::new(tokio::sync::Notify::new()),
            reveal_replay: chrono::Duration::seconds(
                i64::try_from(settings.vault.reveal_replay_s).unwrap_or(i64::MAX / 1000).min(86_400 * 365),
            ),
            store: if settings.db.append_batching {
                EventStore::batched_with(pool.clone(), settings.db.append_writers)
            } else {
                EventStore::new(pool.clone())
            },
            reference: ReferenceData::new(pool.clone()),
            vault,
            ledger: infra::ledger::Ledger::new(pool.clone()),
            analysis: infra::analysis::Analysis::new(pool.clone()),
            supervision_rules: settings.supervision.rules(),
            pool,
        };
        // The feed, event streams and exports read through a pool of their
        // own: readers never take the connections commands need.
        let mut read_db = settings.db.app();
        read_db.pool_size = settings.capacity.read_pool_size;
        read_db.application_name = "huiyin-read".into();
        let read_pool = read_db.pool()?;
        crate::background::spawn(&state, &settings);
        let senders =
            crate::delivery::notices::Senders::from_settings(&settings.notices).map_err(StartupError::Config)?;
        if settings.notices.workers {
            tokio::spawn(crate::delivery::notices::run(state.clone(), senders, settings.notices.clone()));
            tokio::spawn(crate::delivery::webhooks::run(state.clone(), settings.public.clone()));
        }
        let limiter =
            web::Data::new(crate::ratelimit::PublicLimiter::new(settings.public.rate_per_min, settings.public.burst));
        let idle = limiter.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                idle.forget_idle();
            }
        });
        let capacity = web::Data::new(Capacity::new(&state, read_pool.clone(), &settings.capacity));
        // The database probe, on a connection of its own (see `db_health`).
        let health = web::Data::new(crate::db_health::DbHealth::default());
        let mut probe_db = settings.db.app();
        probe_db.pool_size = 1;
        probe_db.application_name = "huiyin-probe".into();
        tokio::spawn(crate::db_health::probe(health.clone().into_inner(), probe_db.pool()?));
        let metrics_listener = TcpListener::bind(settings.metrics.bind)?;
        let metrics_port = metrics_listener.local_addr()?.port();
        let metrics = crate::metrics::server(metrics_listener, state.pool.clone(), read_pool)?;
        let listener = TcpListener::bind(settings.bind)?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(state);
        let auth = web::Data::new(auth);
        let timeout = web::Data::new(RequestTimeout(Duration::from_millis(settings.request_timeout_ms)));
        let spec = crate::openapi::spec();
        let routes = web::Data::new(http_semantics::RouteTable::from_spec(&spec));
        let cors_origins = settings.cors_origins.clone();
        let server = HttpServer::new(move || {
            let (app, _) =
                App::new().into_utoipa_app().openapi(ApiDoc::openapi()).configure(routes::configure).split_for_parts();
            app.app_data(data.clone())
                .app_data(limiter.clone())
                .app_data(capacity.clone())
                .app_data(health.clone())
                .app_data(auth.clone())
                .app_data(timeout.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(MAX_JSON_BYTES)
                        .content_type_required(true)
                        .error_handler(middleware::json_error),
                )
                .app_data(web::PathConfig::default().error_handler(middleware::path_error))
                .app_data(web::QueryConfig::default().error_handler(middleware::query_error))
                .app_data(routes.clone())
                .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", spec.clone()))
                .default_service(web::to(http_semantics::fallback))
                .wrap(from_fn(crate::db_health::fail_fast))
                .wrap(from_fn(http_semantics::conditional_get))
                .wrap(from_fn(middleware::no_store))
                .wrap(http_semantics::cors(&cors_origins))
                .wrap(from_fn(http_semantics::problems_everywhere))
                .wrap(from_fn(middleware::request_context))
        })
        // A client that closes its side has left: drop its request (an export stops) instead of
        // finishing work nobody will read.
        .h1_allow_half_closed(false)
        // Without it, a response written in two segments (head, then a body past the write
        // buffer) waits for the client's delayed ACK under Nagle's algorithm: 40 ms on Linux.
        .tcp_nodelay(true)
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        Ok(Self { port, server, metrics_port, metrics })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port `/metrics` listens on (`HUIYIN_METRICS_BIND`).
    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    /// Runs until stopped (SIGINT / SIGTERM stop it gracefully, finishing requests in flight);
    /// the metrics server stops with it.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics.handle();
        tokio::spawn(self.metrics);
        let stopped = self.server.await;
        metrics.stop(false).await;
        stopped
    }
}
