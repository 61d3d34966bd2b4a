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
    /// Coalesce concurrent appends into shared transactions, each table written once for the
    /// whole batch (`append_batch()`, V37). A lone append is still written at once, on its own.
    #[arg(long, env = "HUIYIN_APPEND_BATCHING", default_value_t = true, action = clap::ArgAction::Set)]
    pub append_batching: bool,
    /// With batching, how many append transactions (alone or batched) may be in flight at once
    /// (at least 1; about one per core of the database server); appends beyond them queue and
    /// share the next transaction.
    #[arg(long, env = "HUIYIN_APPEND_WRITERS", default_value_t = infra::store::BATCH_WRITERS,
          value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..=64), usize::from))]
    pub append_writers: usize,
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
    /// The longest lifetime (`exp - iat`, in seconds) of a token the server accepts or signs.
    #[arg(long = "jwt-max-ttl-s", env = "HUIYIN_JWT_MAX_TTL_S", default_value_t = DEFAULT_JWT_MAX_TTL_S)]
    pub max_ttl_s: u64,
}

/// The default of `HUIYIN_JWT_MAX_TTL_S`: 12 hours.
pub const DEFAULT_JWT_MAX_TTL_S: u64 = 12 * 3600;

/// The largest `HUIYIN_JWT_MAX_TTL_S` that is accepted: 366 days.
pub const LARGEST_JWT_MAX_TTL_S: u64 = 366 * 86_400;

/// The least length of an HS256 secret, in bytes (RFC 7518: at least the hash's 256 bits).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The least number of distinct bytes a secret or key must have; fewer means a repeated
/// pattern (`secretsecret…`, `abab…`), not randomness.
pub const MIN_DISTINCT_BYTES: usize = 16;

/// Secrets that have appeared in this repository (the old docker-compose.yml, tests,
/// benchmarks): whoever reads the repository knows them. Compared without case.
const PUBLISHED_SECRETS: &[&str] = &[
    "change-me-to-a-random-secret-of-at-least-32-bytes",
    "another-secret-that-is-long-enough-to-sign",
    "bench-http-secret-bench-http-secret-000000",
    "bench-secret-bench-secret-bench-secret-0123",
    "0000000000000000000000000000000000000000000000000000000000000000",
];

/// Words that mark a value as a placeholder to be replaced, not a secret.
const PLACEHOLDER_MARKERS: &[&str] = &["change-me", "changeme", "change_me", "replace-me", "replaceme", "placeholder"];

/// The key material (the base64 between the PEM armour lines) of Ed25519 keys published in this
/// repository: `tests/fixtures/test-ed25519-{public,private}.pem`. Anyone can sign with them, so
/// no token key or checkpoint key may be one of them.
const PUBLISHED_ED25519_KEYS: &[&str] = &[
    "MCowBQYDK2VwAyEAMOZBX5RlB3Py2tq5hhiGrsAJObbN2N+qv2265P3Yqxs=",
    "MC4CAQAwBQYDK2VwBCIEIMKHEAWkzhvY2R26IWOe1GExFzMDrSw+W2aOK7srYyRB",
];

/// Whether a PEM file holds a key published in this repository (compared on the key material,
/// whatever the line breaks and armour).
pub fn is_published_key(pem: &[u8]) -> bool {
    let text = String::from_utf8_lossy(pem);
    let material: String =
        text.lines().filter(|l| !l.trim_start().starts_with("-----")).flat_map(|l| l.split_whitespace()).collect();
    PUBLISHED_ED25519_KEYS.contains(&material.as_str())
}

/// Reads a PEM key file named by `setting`, refusing a key published in this repository.
pub fn read_key_pem(setting: &str, path: &std::path::Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{setting}: reading {}: {e}", path.display()))?;
    if is_published_key(&pem) {
        return Err(format!(
            "{setting} is the test key published in this repository: anyone can sign with it; generate a key pair \
             (e.g. `openssl genpkey -algorithm ed25519`)"
        ));
    }
    Ok(pem)
}

/// The shortest period of `b` (the least `p` with `b[i] == b[i + p]` for every `i`) when it is at
/// most half its length: a value that repeats one block, such as a 16-byte key written twice.
fn repeated_block(b: &[u8]) -> Option<usize> {
    (1..=b.len() / 2).find(|&p| b.iter().zip(&b[p..]).all(|(x, y)| x == y))
}

/// Whether more than half of `b`'s steps continue a run of equal steps (`abcdef…`, `0123…`,
/// `zyxw…`, `aaaa…`): a keyboard or alphabet sequence, not random bytes. A random secret has such
/// a step about one time in 256 for bytes, a few per cent for base64 text.
fn mostly_sequences(b: &[u8]) -> bool {
    let continued = b.windows(3).filter(|w| w[1].wrapping_sub(w[0]) == w[2].wrapping_sub(w[1])).count();
    continued * 2 > b.len()
}

/// Whether more than half of `b`'s neighbouring pairs are neighbours on a keyboard row
/// (`qwertyuiop`, `asdfghjkl`, `zxcvbnm`, `1234567890`, either way, any case): a keyboard walk.
fn mostly_keyboard_walk(b: &[u8]) -> bool {
    const ROWS: [&[u8]; 4] = [b"1234567890", b"qwertyuiop", b"asdfghjkl", b"zxcvbnm"];
    let adjacent = |x: u8, y: u8| {
        let (x, y) = (x.to_ascii_lowercase(), y.to_ascii_lowercase());
        ROWS.iter().any(|row| row.windows(2).any(|w| (w[0], w[1]) == (x, y) || (w[1], w[0]) == (x, y)))
    };
    let walked = b.windows(2).filter(|w| adjacent(w[0], w[1])).count();
    walked * 2 > b.len()
}

/// Whether `b` reads as words: letters and spaces only, with at least three spaces (a sentence
/// or a phrase), which a generated secret (base64, hex) never is.
fn is_phrase(b: &[u8]) -> bool {
    b.iter().filter(|&&c| c == b' ').count() >= 3 && b.iter().all(|c| c.is_ascii_alphabetic() || *c == b' ')
}

fn distinct_bytes(b: &[u8]) -> usize {
    let mut seen = [false; 256];
    b.iter().filter(|&&x| !std::mem::replace(&mut seen[usize::from(x)], true)).count()
}

/// Why an HS256 secret is too weak to start with, or `None` when it will do. Refused: fewer than
/// [`MIN_JWT_SECRET_BYTES`] bytes; a secret published in this repository or marked as a
/// placeholder; fewer than [`MIN_DISTINCT_BYTES`] distinct bytes; one block repeated; mostly
/// alphabet or counting sequences (`abcdefghijklmnopqrstuvwxyz0123456789`); mostly a keyboard
/// walk (`qwertyuiop…`); a phrase of words (`this is my very secret jwt signing key`). A secret written
/// only in hex digits is judged on the bytes it encodes (hex has only 16 symbols), so it needs
/// at least 64 hex digits.
pub fn weak_jwt_secret(secret: &str) -> Option<String> {
    if secret.len() < MIN_JWT_SECRET_BYTES {
        return Some(format!("HUIYIN_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes"));
    }
    let lower = secret.trim().to_ascii_lowercase();
    if PUBLISHED_SECRETS.contains(&lower.as_str()) || PLACEHOLDER_MARKERS.iter().any(|m| lower.contains(m)) {
        return Some("HUIYIN_JWT_SECRET is a placeholder or a published example; generate a random one (e.g. `openssl rand -base64 48`)".into());
    }
    let hex_only = secret.bytes().all(|b| b.is_ascii_hexdigit());
    let material = if hex_only { hex::decode(secret).ok() } else { None };
    if hex_only && material.as_ref().is_none_or(|m| m.len() < MIN_JWT_SECRET_BYTES) {
        return Some(format!(
            "HUIYIN_JWT_SECRET in hex must encode at least {MIN_JWT_SECRET_BYTES} bytes ({} hex digits)",
            2 * MIN_JWT_SECRET_BYTES
        ));
    }
    let bytes = material.as_deref().unwrap_or(secret.as_bytes());
    if distinct_bytes(bytes) < MIN_DISTINCT_BYTES {
        return Some(format!(
            "HUIYIN_JWT_SECRET has fewer than {MIN_DISTINCT_BYTES} distinct bytes: a repeated pattern, not a random secret"
        ));
    }
    if let Some(p) = repeated_block(bytes) {
        return Some(format!("HUIYIN_JWT_SECRET repeats one block of {p} bytes: a pattern, not a random secret"));
    }
    if mostly_sequences(bytes) {
        return Some("HUIYIN_JWT_SECRET is mostly alphabet or counting sequences, not a random secret".into());
    }
    if mostly_keyboard_walk(bytes) {
        return Some("HUIYIN_JWT_SECRET is a keyboard walk, not a random secret".into());
    }
    if is_phrase(bytes) {
        return Some("HUIYIN_JWT_SECRET is a phrase of words, not a random secret".into());
    }
    None
}

/// Why a key-encryption key is too weak to start with, or `None` when it will do. Refused: a
/// key published in this repository; every byte the same (the all-zero key of the old
/// docker-compose.yml); a counting sequence (`00 01 02 …`, every step the same); fewer than
/// [`MIN_DISTINCT_BYTES`] distinct bytes; one block repeated (16 random bytes written twice);
/// mostly runs of equal steps; every byte printable ASCII (a typed password in hex).
pub fn weak_kek(key: &[u8; 32]) -> Option<&'static str> {
    let step = key[1].wrapping_sub(key[0]);
    if key.windows(2).all(|w| w[1].wrapping_sub(w[0]) == step) {
        return Some(if step == 0 { "has every byte the same" } else { "is a counting sequence" });
    }
    if PUBLISHED_SECRETS.contains(&hex::encode(key).as_str()) {
        return Some("is a published example");
    }
    if distinct_bytes(key) < MIN_DISTINCT_BYTES {
        return Some("has fewer than 16 distinct bytes: a repeated pattern, not a random key");
    }
    if repeated_block(key).is_some() {
        return Some("repeats one block: a pattern, not a random key");
    }
    if mostly_sequences(key) {
        return Some("is mostly counting sequences, not a random key");
    }
    // Random bytes are all printable ASCII about once in 10^14 (95/256 to the 32nd): a key that
    // is, is text (a password typed in hex), not a random key.
    if key.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Some("is text (every byte printable ASCII), not a random key");
    }
    None
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
    /// Seconds during which a reveal retried with its `Idempotency-Key` shows the identity again
    /// under the one access it recorded (a client retrying a lost answer); after them the retry
    /// is 409 `reveal-replay-expired`, and a new look needs a new reveal, recorded anew.
    #[arg(long = "reveal-replay-s", env = "HUIYIN_REVEAL_REPLAY_S", default_value_t = DEFAULT_REVEAL_REPLAY_S)]
    pub reveal_replay_s: u64,
}

/// The default of `HUIYIN_REVEAL_REPLAY_S`: 5 minutes.
pub const DEFAULT_REVEAL_REPLAY_S: u64 = 300;

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
            // A weak retired key is still accepted: it is what opens the data it wrapped, so
            // refusing it would lose that data instead of protecting it.
            if let Some(why) = weak_kek(&key) {
                tracing::warn!(
                    kek.id = id.trim(),
                    "a retired HUIYIN_KEK_RETIRED key {why}: what it wrapped is only as safe as it"
                );
            }
            v = v.with_retired(id.trim(), key);
        }
        Ok(v)
    }

    /// The key-encryption key, checked: 64 hex characters, and not a known-weak key
    /// ([`weak_kek`]).
    pub fn kek(&self) -> Result<Secret<[u8; 32]>, String> {
        let hex_key = self.kek.as_deref().ok_or("HUIYIN_KEK is not set (64 hex characters)")?;
        let bytes = hex::decode(hex_key.trim()).map_err(|_| "HUIYIN_KEK must be hex")?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| "HUIYIN_KEK must be 32 bytes (64 hex characters)")?;
        if let Some(why) = weak_kek(&key) {
            return Err(format!(
                "HUIYIN_KEK {why}; generate a random key (e.g. `openssl rand -hex 32`) and keep it secret"
            ));
        }
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
    /// Browser origins allowed to call the API cross-origin (CORS), comma-separated, e.g.
    /// `https://ledger.example.gov.cn`. Empty (the default): no cross-origin access.
    #[arg(long, env = "HUIYIN_CORS_ORIGINS", value_delimiter = ',', default_value = "")]
    pub cors_origins: Vec<String>,
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
    /// How much long-running work is admitted at once.
    #[command(flatten)]
    pub capacity: CapacityArgs,
    /// The Prometheus endpoint.
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Notices to citizens: the senders and the delivery worker.
    #[command(flatten)]
    pub notices: NoticeArgs,
    /// The public side and integrators: rate limits, webhooks.
    #[command(flatten)]
    pub public: PublicArgs,
    /// Supervision (督办) raised by rules.
    #[command(flatten)]
    pub supervision: SupervisionArgs,
}

/// The rules that raise supervision items (督办), and how often they run.
#[derive(Debug, Clone, clap::Args)]
pub struct SupervisionArgs {
    /// How often the rules look at the ledger (and finished campaigns' summary reports are
    /// frozen), in seconds; 0 turns both off (a request still freezes a finished campaign's).
    #[arg(long = "supervision-interval-s", env = "HUIYIN_SUPERVISION_INTERVAL_S", default_value_t = 60)]
    pub rules_interval_s: u64,
    /// N: a matter with this many linked duplicates is supervised.
    #[arg(long = "supervision-duplicates", env = "HUIYIN_SUPERVISION_DUPLICATES", default_value_t = 3)]
    pub duplicates: u32,
    /// M: a unit with more overdue cases gets a yellow card (重点督办); more than 2M, red (挂牌督办).
    #[arg(long = "supervision-unit-overdue", env = "HUIYIN_SUPERVISION_UNIT_OVERDUE", default_value_t = 5)]
    pub unit_overdue: u32,
    /// The unit's response is due this many working days after an item is raised.
    #[arg(
        long = "supervision-response-days",
        env = "HUIYIN_SUPERVISION_RESPONSE_DAYS",
        default_value_t = 5,
        value_parser = clap::value_parser!(u16).range(1..=60)
    )]
    pub response_days: u16,
}

impl Default for SupervisionArgs {
    fn default() -> Self {
        Self { rules_interval_s: 60, duplicates: 3, unit_overdue: 5, response_days: 5 }
    }
}

impl SupervisionArgs {
    /// The domain's thresholds.
    pub fn rules(&self) -> domain::records::supervision::Rules {
        domain::records::supervision::Rules {
            duplicates: self.duplicates,
            unit_overdue: self.unit_overdue,
            response_working_days: self.response_days,
        }
    }
}

/// Where notices go out, and how the delivery worker retries. Without `HUIYIN_SMTP_HOST` mail
/// notices wait in the outbox (pending) until one is configured; likewise text messages without
/// `HUIYIN_SMS_GATEWAY_URL`.
#[derive(Debug, Clone, clap::Args)]
pub struct NoticeArgs {
    /// The SMTP server (plain SMTP on a trusted network, e.g. a local relay).
    #[arg(long, env = "HUIYIN_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// Its port.
    #[arg(long, env = "HUIYIN_SMTP_PORT", default_value_t = 25)]
    pub smtp_port: u16,
    /// The sender address, e.g. `回音 <noreply@town.example.gov.cn>`.
    #[arg(long, env = "HUIYIN_SMTP_FROM", default_value = "回音 <noreply@huiyin.invalid>")]
    pub smtp_from: String,
    /// The SMS gateway's send URL (a signed POST; see `api::delivery::sms`).
    #[arg(long, env = "HUIYIN_SMS_GATEWAY_URL")]
    pub sms_gateway_url: Option<String>,
    /// The gateway's access key id.
    #[arg(long, env = "HUIYIN_SMS_ACCESS_KEY", default_value = "")]
    pub sms_access_key: String,
    /// The gateway's signing secret.
    #[arg(long, env = "HUIYIN_SMS_SECRET", hide_env_values = true)]
    pub sms_secret: Option<String>,
    /// The signature name the gateway shows (签名), e.g. `回音`.
    #[arg(long, env = "HUIYIN_SMS_SIGN_NAME", default_value = "回音")]
    pub sms_sign_name: String,
    /// Attempts per notice before it is recorded as failed.
    #[arg(long, env = "HUIYIN_NOTICE_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// The first retry's delay, in seconds; each later one doubles it (at most an hour).
    #[arg(long, env = "HUIYIN_NOTICE_RETRY_BASE_S", default_value_t = 30)]
    pub retry_base_s: u64,
    /// How often the worker looks for due notices, in milliseconds.
    #[arg(long, env = "HUIYIN_NOTICE_POLL_MS", default_value_t = 2_000)]
    pub poll_ms: u64,
    /// Run the delivery workers (notices and webhooks) in this instance.
    #[arg(long, env = "HUIYIN_DELIVERY_WORKERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub workers: bool,
}

impl Default for NoticeArgs {
    fn default() -> Self {
        Self {
            smtp_host: None,
            smtp_port: 25,
            smtp_from: "回音 <noreply@huiyin.invalid>".into(),
            sms_gateway_url: None,
            sms_access_key: String::new(),
            sms_secret: None,
            sms_sign_name: "回音".into(),
            max_attempts: 5,
            retry_base_s: 30,
            poll_ms: 2_000,
            workers: true,
        }
    }
}

/// Limits of the public side (citizens, Open311 clients) and of webhooks.
#[derive(Debug, Clone, clap::Args)]
pub struct PublicArgs {
    /// Requests per minute one client address may make to `/api/v1/public` and `/open311`.
    #[arg(long, env = "HUIYIN_PUBLIC_RATE_PER_MIN", default_value_t = 30)]
    pub rate_per_min: u32,
    /// Requests a client may make at once before the rate applies.
    #[arg(long, env = "HUIYIN_PUBLIC_BURST", default_value_t = 10)]
    pub burst: u32,
    /// Consecutive failed deliveries after which a webhook endpoint is disabled.
    #[arg(long, env = "HUIYIN_WEBHOOK_DISABLE_AFTER", default_value_t = 10)]
    pub webhook_disable_after: u32,
    /// How long a webhook receiver may take to answer, in milliseconds.
    #[arg(long, env = "HUIYIN_WEBHOOK_TIMEOUT_MS", default_value_t = 5_000)]
    pub webhook_timeout_ms: u64,
    /// The first webhook retry's delay, in seconds; each later one doubles it (at most an hour).
    #[arg(long, env = "HUIYIN_WEBHOOK_RETRY_BASE_S", default_value_t = 5)]
    pub webhook_retry_base_s: u64,
    /// Accept webhook URLs naming loopback, private, link-local or other non-public addresses
    /// (off: a webhook cannot be aimed at the service's own network).
    #[arg(long, env = "HUIYIN_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,
}

impl Default for PublicArgs {
    fn default() -> Self {
        Self {
            rate_per_min: 30,
            burst: 10,
            webhook_disable_after: 10,
            webhook_timeout_ms: 5_000,
            webhook_retry_base_s: 5,
            webhook_allow_private: false,
        }
    }
}

/// How much long-running work one instance admits at once, so that readers never starve writers
/// and an abandoned or piled-up request cannot hold the database or the CPU.
#[derive(Debug, Clone, clap::Args)]
pub struct CapacityArgs {
    /// The most event streams (`/api/v1/events/stream`) open at once; beyond, 429 with Retry-After.
    #[arg(long, env = "HUIYIN_MAX_STREAMS", default_value_t = DEFAULT_MAX_STREAMS)]
    pub max_streams: usize,
    /// The most ledger exports (CSV or XLSX) running at once; beyond, 429 with Retry-After.
    #[arg(long, env = "HUIYIN_MAX_EXPORTS", default_value_t = DEFAULT_MAX_EXPORTS)]
    pub max_exports: usize,
    /// The most event streams one caller (a token's subject and role) holds at once.
    #[arg(long, env = "HUIYIN_MAX_STREAMS_PER_CALLER", default_value_t = DEFAULT_MAX_STREAMS_PER_CALLER)]
    pub max_streams_per_caller: usize,
    /// The most exports one caller runs at once.
    #[arg(long, env = "HUIYIN_MAX_EXPORTS_PER_CALLER", default_value_t = DEFAULT_MAX_EXPORTS_PER_CALLER)]
    pub max_exports_per_caller: usize,
    /// How long, in milliseconds, a streamed response (event stream, CSV export) waits for its
    /// client to take the next chunk; a client that stops reading longer loses the response and
    /// its slot.
    #[arg(long, env = "HUIYIN_STALLED_CLIENT_MS", default_value_t = DEFAULT_STALLED_CLIENT_MS)]
    pub stalled_client_ms: u64,
    /// The connections of the read pool, which serves the feed, the event streams and exports
    /// apart from the pool that serves commands (`HUIYIN_POOL_SIZE`).
    #[arg(long, env = "HUIYIN_READ_POOL_SIZE", default_value_t = DEFAULT_READ_POOL_SIZE)]
    pub read_pool_size: usize,
    /// How long `/readyz` waits for the database before answering 503, in milliseconds.
    #[arg(long, env = "HUIYIN_READY_TIMEOUT_MS", default_value_t = DEFAULT_READY_TIMEOUT_MS)]
    pub ready_timeout_ms: u64,
}

/// The default of `HUIYIN_MAX_STREAMS`.
pub const DEFAULT_MAX_STREAMS: usize = 64;
/// The default of `HUIYIN_MAX_EXPORTS`: an XLSX export keeps a core busy.
pub const DEFAULT_MAX_EXPORTS: usize = 2;
/// The default of `HUIYIN_MAX_STREAMS_PER_CALLER`: an eighth of the default instance cap.
pub const DEFAULT_MAX_STREAMS_PER_CALLER: usize = 8;
/// The default of `HUIYIN_MAX_EXPORTS_PER_CALLER`.
pub const DEFAULT_MAX_EXPORTS_PER_CALLER: usize = 1;
/// The default of `HUIYIN_STALLED_CLIENT_MS`: 30 s.
pub const DEFAULT_STALLED_CLIENT_MS: u64 = 30_000;
/// The default of `HUIYIN_READ_POOL_SIZE`.
pub const DEFAULT_READ_POOL_SIZE: usize = 4;
/// The default of `HUIYIN_READY_TIMEOUT_MS`.
pub const DEFAULT_READY_TIMEOUT_MS: u64 = 2_000;

impl Default for CapacityArgs {
    fn default() -> Self {
        Self {
            max_streams: DEFAULT_MAX_STREAMS,
            max_exports: DEFAULT_MAX_EXPORTS,
            max_streams_per_caller: DEFAULT_MAX_STREAMS_PER_CALLER,
            max_exports_per_caller: DEFAULT_MAX_EXPORTS_PER_CALLER,
            stalled_client_ms: DEFAULT_STALLED_CLIENT_MS,
            read_pool_size: DEFAULT_READ_POOL_SIZE,
            ready_timeout_ms: DEFAULT_READY_TIMEOUT_MS,
        }
    }
}

/// The Prometheus endpoint (`GET /metrics`, text format). It is served on a listener of its own,
/// unauthenticated, never on the API's: bind it to an address only the scraper can reach.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Where `/metrics` listens (loopback by default).
    #[arg(id = "metrics_bind", long = "metrics-bind", env = "HUIYIN_METRICS_BIND", default_value = DEFAULT_METRICS_BIND)]
    pub bind: SocketAddr,
}

/// The default of `HUIYIN_METRICS_BIND`.
pub const DEFAULT_METRICS_BIND: &str = "127.0.0.1:9464";

impl Default for MetricsArgs {
    /// Any free loopback port: for servers built in code (tests, benchmarks), where a fixed port
    /// would collide; [`crate::startup::Application::metrics_port`] tells which.
    fn default() -> Self {
        Self { bind: SocketAddr::from(([127, 0, 0, 1], 0)) }
    }
}
