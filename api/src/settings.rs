//! Typed settings, read from the command line or the environment (prefix `HUIYIN_`, plus
//! `DATABASE_URL`). Secrets are wrapped so they never print. Passed explicitly into
//! [`crate::startup::Application::build`]; there is no global settings singleton.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use infra::{DbSettings, Secret};

/// Database settings.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// The service's connection (a role that owns nothing, e.g. `huiyin_app`).
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub url: String,
    /// The schema owner's connection, used to apply migrations; defaults to `DATABASE_URL`.
    #[arg(long = "admin-database-url", env = "HUIYIN_ADMIN_DATABASE_URL", hide_env_values = true)]
    pub admin_url: Option<String>,
    /// The most database connections the service opens.
    #[arg(long, env = "HUIYIN_POOL_SIZE", default_value_t = 16)]
    pub pool_size: usize,
    /// Coalesce concurrent appends into shared transactions (worth it where fsync is slow).
    #[arg(long, env = "HUIYIN_APPEND_BATCHING", default_value_t = false, action = clap::ArgAction::Set)]
    pub append_batching: bool,
    /// Server-side `statement_timeout`, in milliseconds.
    #[arg(long, env = "HUIYIN_STATEMENT_TIMEOUT_MS", default_value_t = 10_000)]
    pub statement_timeout_ms: u64,
}

impl DatabaseArgs {
    /// The service's database settings.
    pub fn app(&self) -> DbSettings {
        let mut s = DbSettings::new(self.url.clone());
        s.pool_size = self.pool_size;
        s.statement_timeout = Duration::from_millis(self.statement_timeout_ms);
        s
    }

    /// The migration owner's database settings.
    pub fn admin(&self) -> DbSettings {
        DbSettings::new(self.admin_url.clone().unwrap_or_else(|| self.url.clone()))
    }
}

/// Token settings.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// HS256 secret for development, at least 32 bytes.
    #[arg(long = "jwt-secret", env = "HUIYIN_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Ed25519 private key (PEM file) to sign tokens with (`huiyin token`).
    #[arg(long = "jwt-private-key", env = "HUIYIN_JWT_PRIVATE_KEY")]
    pub jwt_private_key: Option<PathBuf>,
    /// Ed25519 public key (PEM file) to verify tokens with; enables EdDSA.
    #[arg(long = "jwt-public-key", env = "HUIYIN_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,
    /// The `iss` tokens must carry.
    #[arg(long = "jwt-issuer", env = "HUIYIN_JWT_ISSUER", default_value = "huiyin")]
    pub issuer: String,
    /// The `aud` tokens must carry.
    #[arg(long = "jwt-audience", env = "HUIYIN_JWT_AUDIENCE", default_value = "huiyin-api")]
    pub audience: String,
}

/// Personal-data key settings.
#[derive(Debug, Clone, clap::Args)]
pub struct VaultArgs {
    /// The key-encryption key for personal data: 64 hex characters (32 bytes).
    #[arg(long = "kek", env = "HUIYIN_KEK", hide_env_values = true)]
    pub kek: Option<String>,
    /// The id recorded with every key it wraps.
    #[arg(long = "kek-id", env = "HUIYIN_KEK_ID", default_value = "kek-1")]
    pub kek_id: String,
    /// Earlier keys, `id=hex,id=hex`: to rotate, set a new HUIYIN_KEK / HUIYIN_KEK_ID and move the
    /// old pair here, so what it wrapped still opens.
    #[arg(long = "kek-retired", env = "HUIYIN_KEK_RETIRED", hide_env_values = true)]
    pub retired: Option<String>,
}

impl VaultArgs {
    /// The vault these settings describe.
    pub fn vault(&self) -> Result<infra::vault::Vault, String> {
        let mut v = infra::vault::Vault::new(*self.kek()?.expose(), self.kek_id.clone());
        for pair in self.retired.as_deref().unwrap_or_default().split(',').filter(|p| !p.trim().is_empty()) {
            let (id, key) = pair.split_once('=').ok_or("HUIYIN_KEK_RETIRED must be id=hex,id=hex")?;
            let key: [u8; 32] = hex::decode(key.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or("every HUIYIN_KEK_RETIRED key must be 64 hex characters")?;
            v = v.with_retired(id.trim(), key);
        }
        Ok(v)
    }

    /// The key-encryption key, checked.
    pub fn kek(&self) -> Result<Secret<[u8; 32]>, String> {
        let hex_key = self.kek.as_deref().ok_or("HUIYIN_KEK is not set (64 hex characters)")?;
        let bytes = hex::decode(hex_key.trim()).map_err(|_| "HUIYIN_KEK must be hex")?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| "HUIYIN_KEK must be 32 bytes (64 hex characters)")?;
        Ok(Secret::new(key))
    }
}

/// Signed checkpoints of the whole log.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckpointArgs {
    /// Ed25519 private key (PEM file) that signs checkpoints; without it no checkpoint is made.
    #[arg(long = "checkpoint-private-key", env = "HUIYIN_CHECKPOINT_PRIVATE_KEY")]
    pub private_key: Option<PathBuf>,
    /// Ed25519 public key (PEM file) that `huiyin verify` checks checkpoint signatures with.
    #[arg(long = "checkpoint-public-key", env = "HUIYIN_CHECKPOINT_PUBLIC_KEY")]
    pub public_key: Option<PathBuf>,
    /// The id recorded with every checkpoint (the JWS `kid`).
    #[arg(long = "checkpoint-key-id", env = "HUIYIN_CHECKPOINT_KEY_ID", default_value = "checkpoint-1")]
    pub key_id: String,
    /// Seconds between checkpoints (0: only on request).
    #[arg(long = "checkpoint-interval-s", env = "HUIYIN_CHECKPOINT_INTERVAL_S", default_value_t = 300)]
    pub interval_s: u64,
}

/// Everything `huiyin serve` needs.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Where to listen.
    #[arg(long, env = "HUIYIN_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// The most time one request may take, in milliseconds.
    #[arg(long, env = "HUIYIN_REQUEST_TIMEOUT_MS", default_value_t = 15_000)]
    pub request_timeout_ms: u64,
    /// Apply pending migrations (as the admin connection) before serving.
    #[arg(long, env = "HUIYIN_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate: bool,
    /// Database.
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Tokens.
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Personal data.
    #[command(flatten)]
    pub vault: VaultArgs,
    /// Checkpoints.
    #[command(flatten)]
    pub checkpoints: CheckpointArgs,
}
