//! The connection pool. deadpool has no timeouts by default, so every one is set here, and the
//! server is told to cancel long statements and idle transactions (a long-running writing
//! transaction would hold back every feed reader).

use std::time::Duration;

use deadpool_postgres::{ManagerConfig, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;

use crate::error::StoreError;
use crate::secret::Secret;

pub use deadpool_postgres::Pool;

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct DbSettings {
    /// A libpq-style URL (`postgres://user@host:port/db`).
    pub url: Secret<String>,
    /// The most connections the pool opens.
    pub pool_size: usize,
    /// How long a request waits for a free connection.
    pub wait_timeout: Duration,
    /// `statement_timeout` on the server.
    pub statement_timeout: Duration,
    /// `idle_in_transaction_session_timeout` on the server.
    pub idle_in_transaction_timeout: Duration,
    /// The `application_name` the connections report (`pg_stat_activity` tells pools apart by it).
    pub application_name: String,
}

impl DbSettings {
    /// Settings with the defaults for a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url.into()),
            pool_size: 16,
            wait_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: Duration::from_secs(15),
            application_name: "huiyin".into(),
        }
    }

    /// The parsed connection configuration with the server-side limits.
    pub fn pg_config(&self) -> Result<tokio_postgres::Config, StoreError> {
        let mut cfg: tokio_postgres::Config = self.url.expose().parse().map_err(StoreError::Db)?;
        cfg.options(format!(
            // JIT compiles expensive-looking plans for tens of milliseconds; every query here is
            // short and index-driven, so it only ever adds latency.
            "-c statement_timeout={} -c idle_in_transaction_session_timeout={} -c synchronous_commit=on -c jit=off",
            self.statement_timeout.as_millis(),
            self.idle_in_transaction_timeout.as_millis()
        ));
        cfg.application_name(&self.application_name);
        cfg.connect_timeout(Duration::from_secs(5));
        Ok(cfg)
    }

    /// Builds the pool. Connections are opened lazily.
    pub fn pool(&self) -> Result<Pool, StoreError> {
        let mgr = deadpool_postgres::Manager::from_config(
            self.pg_config()?,
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        Pool::builder(mgr)
            .max_size(self.pool_size)
            .runtime(Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(self.wait_timeout),
                create: Some(Duration::from_secs(5)),
                recycle: Some(Duration::from_secs(5)),
            })
            .build()
            .map_err(|_| StoreError::Vault("the pool could not be built"))
    }
}

/// Whether the database answers `SELECT 1` through `pool` within `limit` (a readiness probe).
/// A connection whose query did not answer in time is taken out of the pool and closed, never
/// lent to the next caller: a frozen server would hang that caller too.
pub async fn ping(pool: &Pool, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let Ok(Ok(client)) = tokio::time::timeout_at(deadline, pool.get()).await else {
        return false;
    };
    match tokio::time::timeout_at(deadline, client.simple_query("SELECT 1")).await {
        Ok(answer) => answer.is_ok(),
        Err(_) => {
            drop(deadpool_postgres::Object::take(client));
            false
        }
    }
}

/// `SET TRANSACTION SNAPSHOT` of a snapshot `pg_export_snapshot()` gave (quotes stripped, so the
/// id cannot end the literal): the first statement of a repeatable-read transaction that reads
/// what the exporting one reads.
pub(crate) fn import_snapshot_sql(snapshot: &str) -> String {
    format!("SET TRANSACTION SNAPSHOT '{}'", snapshot.replace('\'', ""))
}

/// Runs a compaction function (`SELECT f($1)`, which moves up to `$1` logged changes into its
/// totals and returns how many it moved) batch after batch until a batch comes back short;
/// returns how many moved in all.
pub(crate) async fn compact_until_done(pool: &Pool, call: &str) -> Result<u64, StoreError> {
    const BATCH: i32 = 50_000;
    let client = pool.get().await?;
    let mut moved = 0u64;
    loop {
        let n: i64 = client.query_one(call, &[&BATCH]).await?.get(0);
        moved += u64::try_from(n).unwrap_or(0);
        if n < i64::from(BATCH) {
            return Ok(moved);
        }
    }
}
