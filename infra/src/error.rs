//! Storage errors. Named database conditions become typed variants here, in one place.

use domain::HistoryError;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The case moved on: the caller expected another version.
    #[error("version conflict: expected {expected}, the case is at {actual}")]
    Conflict {
        /// The version the caller decided against.
        expected: u32,
        /// The version the case is at.
        actual: u32,
    },
    /// The idempotency key was used before with another request.
    #[error("the idempotency key was already used for a different request")]
    IdempotencyMismatch,
    /// The stored history cannot be folded.
    #[error("stored history of case {case} is unreadable")]
    History {
        /// The case.
        case: uuid::Uuid,
        /// Why.
        #[source]
        source: HistoryError,
    },
    /// A unique constraint was violated (the constraint's name).
    #[error("unique constraint {0} violated")]
    Unique(String),
    /// A foreign key pointed at nothing (the constraint's name).
    #[error("foreign key {0} violated")]
    ForeignKey(String),
    /// A check constraint refused a value (the constraint's name).
    #[error("check constraint {0} violated")]
    Check(String),
    /// The personal-data vault failed.
    #[error("personal data vault: {0}")]
    Vault(&'static str),
    /// No connection could be had in time.
    #[error("database pool")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The database refused or failed.
    #[error("database")]
    Db(#[source] tokio_postgres::Error),
    /// The database refused a value (SQLSTATE class 22: out of range, bad format).
    #[error("the database refused a value: {0}")]
    BadValue(String),
    /// The statement ran past `statement_timeout`.
    #[error("database statement timed out")]
    Timeout,
    /// The connection to the database was lost or could not be made: closed, an I/O error, the
    /// server shutting down or starting up ([`is_connection_error`]). Whether a write in flight
    /// committed is unknown; a retry with the same Idempotency-Key answers it.
    #[error("database unavailable")]
    Unavailable(#[source] tokio_postgres::Error),
}

/// Whether an error means the connection is gone or could not be made, not that the statement
/// failed: the connection closed, an I/O error on it, a failed connect, or the server refusing
/// service while it shuts down, crashes, starts up or is out of connections (SQLSTATE class 08,
/// 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now, 57P05 idle session
/// timeout, 53300 too many connections).
pub fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::IDLE_SESSION_TIMEOUT,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(code);
    }
    // `Kind::Io` ("error communicating with the server") and `Kind::Connect` carry the I/O error
    // as their source; no other kind does.
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if is_connection_error(&e) {
            return Self::Unavailable(e);
        }
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            if *code == tokio_postgres::error::SqlState::QUERY_CANCELED {
                return Self::Timeout;
            }
            let constraint = || db.constraint().unwrap_or("unknown").to_owned();
            // An exclusion constraint (two contact-card batches whose serials overlap) is a
            // uniqueness rule over ranges: the same answer.
            if *code == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                || *code == tokio_postgres::error::SqlState::EXCLUSION_VIOLATION
            {
                return Self::Unique(constraint());
            }
            if *code == tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION {
                return Self::ForeignKey(constraint());
            }
            if *code == tokio_postgres::error::SqlState::CHECK_VIOLATION {
                return Self::Check(constraint());
            }
            if code.code().starts_with("22") {
                return Self::BadValue(db.message().to_owned());
            }
        }
        Self::Db(e)
    }
}

impl StoreError {
    /// Whether retrying the same operation may succeed (serialisation failure, deadlock, a
    /// concurrent idempotent append).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unique(c) => c == "idempotency_keys_pkey",
            Self::Db(e) => e.as_db_error().is_some_and(|d| {
                let c = d.code();
                *c == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
            }),
            _ => false,
        }
    }
}
