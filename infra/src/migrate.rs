//! Migrations: the plain SQL files under `migrations/`, embedded at build time and applied by
//! refinery. Files are never edited once applied; changes come as new files.

use tokio_postgres::NoTls;

use crate::db::DbSettings;
use crate::error::StoreError;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The connection failed.
    #[error("connecting for migrations")]
    Connect(#[source] StoreError),
    /// A migration failed.
    #[error("applying migrations")]
    Apply(#[from] refinery::Error),
}

/// Applies every pending migration, as the connecting role (which must own the schema), with no
/// statement timeout. Returns the names of the migrations applied now.
pub async fn run(settings: &DbSettings) -> Result<Vec<String>, MigrateError> {
    let cfg = settings.pg_config().map_err(MigrateError::Connect)?;
    let (mut client, conn) = cfg.connect(NoTls).await.map_err(|e| MigrateError::Connect(e.into()))?;
    let handle = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "migration connection ended");
        }
    });
    // A migration runs as long as it needs: one that fills a table from the ledger (V24) takes
    // minutes at a million cases, far over the service's statement timeout.
    client.batch_execute("SET statement_timeout = 0").await.map_err(|e| MigrateError::Connect(e.into()))?;
    let report = embedded::migrations::runner().set_grouped(true).run_async(&mut client).await?;
    drop(client);
    let _ = handle.await;
    Ok(report.applied_migrations().iter().map(|m| m.to_string()).collect())
}
