//! `spawn_app()`: the real server on a random port, on its own fresh database, with typed
//! request helpers.

use std::time::Duration;

use api::settings::{AuthArgs, DatabaseArgs, ServeArgs, VaultArgs};
use api::startup::Application;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::TestDb;

/// The issuer and audience the test server expects.
pub const ISSUER: &str = "huiyin-test";
/// The audience the test server expects.
pub const AUDIENCE: &str = "huiyin-api-test";

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub secret: String,
    /// The key-encryption key the server seals personal data with (a second server of the same
    /// test needs it to open them).
    pub kek: Option<String>,
    /// Units created for the test: the town, a village, two departments.
    pub town: Uuid,
    pub village: Uuid,
    pub dept_a: Uuid,
    pub dept_b: Uuid,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or_default()
    }
    /// Asserts a problem+json answer with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.text);
        assert_eq!(self.content_type(), "application/problem+json", "content type; body: {}", self.text);
        assert_eq!(self.body["code"], code, "problem code; body: {}", self.text);
        assert_eq!(self.body["type"], format!("urn:huiyin:problem:{code}"));
        assert_eq!(self.body["status"], status);
        assert!(self.body["request_id"].is_string(), "problem has a request id: {}", self.text);
    }
}

/// A fresh Ed25519 key pair for this test process, as PEM files: `(private, public)`. The server
/// refuses the pair published in `tests/fixtures` (anyone can sign with it), so tests sign with
/// their own.
pub fn test_key_pair() -> &'static (std::path::PathBuf, std::path::PathBuf) {
    static KEYS: std::sync::LazyLock<(std::path::PathBuf, std::path::PathBuf)> = std::sync::LazyLock::new(|| {
        let pair = api::keys::generate_ed25519();
        let dir = std::env::temp_dir().join(format!("huiyin-test-keys-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let (private, public_path) = (dir.join("private.pem"), dir.join("public.pem"));
        std::fs::write(&private, pair.private).unwrap();
        std::fs::write(&public_path, pair.public).unwrap();
        (private, public_path)
    });
    &KEYS
}

/// A file of `tests/fixtures` (the published key pair the server must refuse, and its README).
pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// The settings the test server runs with.
pub fn settings(db: &TestDb, secret: &str) -> ServeArgs {
    ServeArgs {
        bind: "127.0.0.1:0".parse().unwrap(),
        request_timeout_ms: 15_000,
        migrate: false,
        cors_origins: vec!["https://ledger.example.org".into()],
        db: DatabaseArgs {
            url: db.app_settings().url.expose().clone(),
            admin_url: None,
            pool_size: 8,
            statement_timeout_ms: 10_000,
            // As it ships.
            append_batching: true,
            append_writers: infra::store::BATCH_WRITERS,
        },
        auth: AuthArgs {
            jwt_secret: Some(secret.into()),
            jwt_private_key: None,
            jwt_public_key: None,
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            max_ttl_s: api::settings::DEFAULT_JWT_MAX_TTL_S,
        },
        // A random key per test: the server refuses well-known and patterned keys.
        vault: VaultArgs {
            kek: Some(format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())),
            kek_id: "test-kek".into(),
            retired: None,
            reveal_replay_s: api::settings::DEFAULT_REVEAL_REPLAY_S,
        },
        checkpoints: api::settings::CheckpointArgs {
            private_key: Some(test_key_pair().0.clone()),
            public_key: Some(test_key_pair().1.clone()),
            key_id: "test-checkpoint".into(),
            interval_s: 0,
        },
        capacity: Default::default(),
        metrics: Default::default(),
        // Notices wait in the outbox unless a test configures a sender; the workers poll fast.
        notices: api::settings::NoticeArgs { poll_ms: 100, ..Default::default() },
        // Tests send many public requests from one address: the limit is the 429 test's own.
        // Receivers listen on 127.0.0.1: webhooks may name it here (the refusal has its own test).
        public: api::settings::PublicArgs {
            rate_per_min: 60_000,
            burst: 10_000,
            webhook_allow_private: true,
            ..Default::default()
        },
        // The rules run where a test asks for them.
        supervision: api::settings::SupervisionArgs { rules_interval_s: 0, ..Default::default() },
    }
}

/// Starts the server on a fresh database and creates the test's units.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with settings changed by `adjust`.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut ServeArgs)) -> TestApp {
    api::telemetry::init();
    let db = TestDb::new().await;
    let secret = format!("test-secret-{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let mut s = settings(&db, &secret);
    adjust(&mut s);
    let kek = s.vault.kek.clone();
    let app = Application::build(s).await.expect("the app builds");
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap();
    // Set up through the database, so a test may run the server with any token settings.
    let reference = infra::reference::ReferenceData::new(db.app_pool());
    let town = reference.create_unit("青山镇", domain::UnitKind::Town, None).await.unwrap().id;
    let village = reference.create_unit("东岭村", domain::UnitKind::Village, Some(town)).await.unwrap().id;
    let dept_a = reference.create_unit("卫生院", domain::UnitKind::Department, Some(town)).await.unwrap().id;
    let dept_b = reference.create_unit("教育办", domain::UnitKind::Department, Some(town)).await.unwrap().id;
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client,
        db,
        secret,
        kek,
        town: town.as_uuid(),
        village: village.as_uuid(),
        dept_a: dept_a.as_uuid(),
        dept_b: dept_b.as_uuid(),
    }
}

impl TestApp {
    /// A valid HS256 token for a role (and unit).
    pub fn token(&self, role: &str, unit: Option<Uuid>) -> String {
        self.token_with(json!({
            "sub": format!("{role}-{}", unit.map(|u| u.simple().to_string()).unwrap_or_default()),
            "role": role,
            "unit": unit,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "exp": chrono::Utc::now().timestamp() + 3600,
            "iat": chrono::Utc::now().timestamp(),
        }))
    }

    /// A token with arbitrary claims, signed with the server's secret.
    pub fn token_with(&self, claims: Value) -> String {
        let mut claims = claims;
        if claims.get("unit").is_some_and(Value::is_null) {
            claims.as_object_mut().unwrap().remove("unit");
        }
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .unwrap()
    }

    /// Sends a request and reads the reply.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.address));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("the request is sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, headers, body, text }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(Method::GET, path, Some(token), None, &[]).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(token), Some(&body), &[]).await
    }

    pub async fn create_unit(&self, admin: &str, name: &str, kind: &str, parent: Option<Uuid>) -> Uuid {
        let r = self.post("/api/v1/units", admin, json!({ "name": name, "kind": kind, "parent_id": parent })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Registers a case as a clerk and returns its id.
    pub async fn register(&self, body: Value) -> Uuid {
        let r = self.post("/api/v1/cases", &self.token("clerk", None), body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_str().unwrap().parse().unwrap()
    }

    /// A typical registration body.
    pub fn case_body(&self) -> Value {
        json!({
            "channel": "symposium",
            "kind": "complaint",
            "title": "低保评定不公开",
            "description": "村民代表在座谈会上反映：本村低保评定没有张榜公示，群众意见较大。",
            "village_id": self.village,
            "complainant": { "name": "张三", "phone": "13812345678" }
        })
    }

    /// Makes checkpoints until one covers at least `events` events and returns it. The feed (and
    /// so the integrity watch a checkpoint waits for) shows an event once every transaction older
    /// than it has ended in the whole cluster, other tests' databases included, so a checkpoint
    /// taken at once may not cover it yet. Panics after 20 s.
    pub async fn checkpoint_covering(&self, events: u64) -> Value {
        let sup = self.token("supervisor", None);
        for _ in 0..400 {
            let r = self.post("/api/v1/integrity/checkpoints", &sup, json!({})).await;
            assert!(r.status.is_success() || r.status == StatusCode::NOT_FOUND, "{}", r.text);
            if r.body["event_count"].as_u64().is_some_and(|n| n >= events) {
                return r.body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no checkpoint covered {events} events within 20 s");
    }

    /// Starts another server on this test's database (a second instance, or the first one
    /// restarted), with settings changed by `adjust`; returns its base URL.
    pub async fn spawn_another(&self, adjust: impl FnOnce(&mut ServeArgs)) -> String {
        let mut s = settings(&self.db, &self.secret);
        s.vault.kek.clone_from(&self.kek);
        adjust(&mut s);
        let app = Application::build(s).await.expect("the app builds");
        let port = app.port();
        tokio::spawn(app.run_until_stopped());
        format!("http://127.0.0.1:{port}")
    }

    /// Counts the events in the log (to prove nothing was written).
    pub async fn event_count(&self) -> i64 {
        self.db.app_client().await.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0)
    }
}
