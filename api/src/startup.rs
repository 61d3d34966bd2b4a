//! Building the application: it binds its own listener, so tests can ask for port 0 and read
//! [`Application::port`].

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use infra::{EventStore, Pool};

use crate::routes;
use crate::settings::ServeArgs;

/// Shared state of every request.
#[derive(Clone)]
pub struct AppState {
    /// The event store.
    pub store: EventStore,
    /// The pool, for reads and reference data.
    pub pool: Pool,
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
}

impl Application {
    /// Migrates (if asked), connects and binds.
    pub async fn build(settings: ServeArgs) -> Result<Self, StartupError> {
        if settings.migrate {
            let applied = infra::migrate::run(&settings.db.admin()).await?;
            tracing::info!(migrations.applied = applied.len(), "migrations applied");
        }
        let pool = settings.db.app().pool()?;
        let state = AppState {
            store: EventStore::new(pool.clone()),
            pool,
        };
        let listener = TcpListener::bind(settings.bind)?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .configure(routes::health::configure)
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        Ok(Self { port, server })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until stopped (SIGINT / SIGTERM stop it gracefully).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
