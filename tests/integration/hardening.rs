//! "Proven under fire": development secrets and the private cluster, weak keys refused at
//! start-up, a cap on token lifetimes, error bodies and log lines that never echo a submitted
//! value, `Cache-Control: no-store` on everything under /api/v1, a private XLSX temporary file,
//! and a reveal's purpose.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use api::settings::{AuthArgs, DEFAULT_JWT_MAX_TTL_S, VaultArgs};
use domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tests::app::{AUDIENCE, ISSUER, TestApp, spawn_app, spawn_app_with};
use uuid::Uuid;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

/// A scratch checkout: `scripts/` copied into a fresh folder under the temp dir.
fn scratch_checkout() -> PathBuf {
    let root = std::env::temp_dir().join(format!("huiyin-hardening-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(root.join("scripts")).unwrap();
    for f in ["pg.sh", "dev-env.sh"] {
        std::fs::copy(repo().join("scripts").join(f), root.join("scripts").join(f)).unwrap();
    }
    root
}

fn random_hex(bytes: usize) -> String {
    (0..bytes.div_ceil(16)).map(|_| Uuid::new_v4().simple().to_string()).collect::<String>()[..2 * bytes].to_owned()
}

fn auth_args(secret: &str) -> AuthArgs {
    AuthArgs {
        jwt_secret: Some(secret.into()),
        jwt_private_key: None,
        jwt_public_key: None,
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        max_ttl_s: DEFAULT_JWT_MAX_TTL_S,
    }
}

// 1. Development secrets and the private cluster -------------------------------------------

#[test]
fn dev_env_writes_every_secret_0600_in_a_0700_folder_and_tightens_old_ones() {
    let root = scratch_checkout();
    // A secret an older checkout wrote with the default umask.
    std::fs::create_dir_all(root.join(".dev")).unwrap();
    std::fs::set_permissions(root.join(".dev"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(root.join(".dev/kek"), random_hex(32)).unwrap();
    std::fs::set_permissions(root.join(".dev/kek"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg("umask 022 && source scripts/dev-env.sh && umask")
        .current_dir(&root)
        // A DATABASE_URL of its own, so the script starts no cluster.
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env_remove("HUIYIN_JWT_SECRET")
        .env_remove("HUIYIN_JWT_PUBLIC_KEY")
        .env_remove("HUIYIN_KEK")
        .env_remove("HUIYIN_CHECKPOINT_PRIVATE_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0022", "the caller's umask is left alone");
    assert_eq!(mode(&root.join(".dev")), 0o700, ".dev/");
    for f in ["jwt-secret", "kek"] {
        assert_eq!(mode(&root.join(".dev").join(f)), 0o600, ".dev/{f}");
    }
    if root.join(".dev/checkpoint-private.pem").exists() {
        assert_eq!(mode(&root.join(".dev/checkpoint-private.pem")), 0o600, "the checkpoint private key");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn pg_sh_keeps_the_clusters_passwords_random_0600_in_a_0700_folder() {
    let root = scratch_checkout();
    let run = || {
        let out = Command::new("bash")
            .arg("-c")
            .arg("umask 022 && scripts/pg.sh passwords")
            .current_dir(&root)
            .env("HUIYIN_PG_PORT", "55431")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run();
    let auth = root.join(".dev/pg");
    assert_eq!(mode(&root.join(".dev")), 0o700);
    assert_eq!(mode(&auth), 0o700);
    let mut passwords = HashSet::new();
    for role in ["postgres", "huiyin_owner", "huiyin_app"] {
        let f = auth.join(format!("{role}.password"));
        assert_eq!(mode(&f), 0o600, "{role}");
        let pw = std::fs::read_to_string(&f).unwrap();
        assert!(pw.len() >= 32 && pw.bytes().all(|b| b.is_ascii_hexdigit()), "{role}: a random password");
        passwords.insert(pw);
    }
    assert_eq!(passwords.len(), 3, "one password per role");
    assert_eq!(mode(&auth.join("pgpass")), 0o600, "pgpass");
    let pgpass = std::fs::read_to_string(auth.join("pgpass")).unwrap();
    assert!(pgpass.lines().any(|l| l.starts_with("127.0.0.1:55431:*:huiyin_app:")), "{}", pgpass.len());
    // Loosened by someone: tightened again, never replaced.
    std::fs::set_permissions(auth.join("postgres.password"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = std::fs::read_to_string(auth.join("postgres.password")).unwrap();
    run();
    assert_eq!(mode(&auth.join("postgres.password")), 0o600);
    assert_eq!(std::fs::read_to_string(auth.join("postgres.password")).unwrap(), before);
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test]
async fn the_test_cluster_asks_every_connection_for_a_password() {
    let base = std::env::var("HUIYIN_TEST_DATABASE_URL").expect("run through make test");
    let rest = base.split_once("://").unwrap().1;
    let (userinfo, host) = rest.rsplit_once('@').expect("user@host");
    let (user, password) = userinfo.split_once(':').expect("HUIYIN_TEST_DATABASE_URL carries a password");
    assert!(!password.is_empty());
    let connect = |url: String| async move {
        tokio_postgres::connect(&url, tokio_postgres::NoTls).await.map(|(c, conn)| {
            tokio::spawn(conn);
            c
        })
    };
    for (what, url) in [
        ("no password", format!("postgres://{user}@{host}")),
        ("a wrong password", format!("postgres://{user}:not-the-password@{host}")),
        ("the service's role without a password", format!("postgres://huiyin_app@{host}")),
    ] {
        assert!(connect(url).await.is_err(), "{what} is refused");
    }
    let client = connect(base.clone()).await.expect("the password is accepted");
    let methods: Vec<String> = client
        .query("SELECT DISTINCT auth_method FROM pg_hba_file_rules", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(methods, vec!["scram-sha-256".to_owned()], "every pg_hba.conf line asks for a password");
}

/// A fresh reviewer's finding: compose generated no checkpoint key pair, so that setup never
/// signed a checkpoint. `docker/secrets.sh` (run here as compose runs it, with its volumes as
/// folders) now makes every secret the server reads, private, once.
#[test]
fn the_compose_secrets_script_makes_every_secret_once_and_private() {
    let scratch = std::env::temp_dir().join(format!("huiyin-compose-secrets-{}", Uuid::new_v4().simple()));
    let (db, app) = (scratch.join("db"), scratch.join("app"));
    let uid = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap().trim().to_owned();
    let bin_dir = crate::reliability::huiyin_bin().parent().unwrap().to_path_buf();
    let run = || {
        let out = Command::new("sh")
            .arg(repo().join("docker/secrets.sh"))
            .env("SECRETS_DB_DIR", &db)
            .env("SECRETS_APP_DIR", &app)
            .env("DB_UID", &uid)
            .env("APP_UID", &uid)
            .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run();
    let expected_app =
        ["kek", "jwt-secret", "database-url", "admin-database-url", "checkpoint-private.pem", "checkpoint-public.pem"];
    for (dir, files) in [(&db, &["postgres", "huiyin_owner", "huiyin_app"][..]), (&app, &expected_app[..])] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
        for f in files {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
    }
    let private = std::fs::read(app.join("checkpoint-private.pem")).unwrap();
    assert!(jsonwebtoken::EncodingKey::from_ed_pem(&private).is_ok(), "a usable Ed25519 private key");
    assert!(jsonwebtoken::DecodingKey::from_ed_pem(&std::fs::read(app.join("checkpoint-public.pem")).unwrap()).is_ok());
    // Never replaced: what the key signed must go on verifying.
    let kek = std::fs::read(app.join("kek")).unwrap();
    run();
    assert_eq!(std::fs::read(app.join("checkpoint-private.pem")).unwrap(), private);
    assert_eq!(std::fs::read(app.join("kek")).unwrap(), kek);
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
fn docker_compose_ships_no_secret() {
    let compose = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    for literal in
        ["HUIYIN_KEK:", "HUIYIN_JWT_SECRET:", "POSTGRES_PASSWORD:", "DATABASE_URL:", "change-me", "000000000000"]
    {
        assert!(!compose.contains(literal), "docker-compose.yml sets {literal}");
    }
    for entry in std::fs::read_dir(repo().join("docker")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap().to_ascii_uppercase();
        assert!(!text.contains("PASSWORD '"), "{} holds a literal password", path.display());
    }
}

#[tokio::test]
async fn weak_keys_are_refused_at_startup_with_a_clear_message() {
    let kek = |hex: String| {
        VaultArgs {
            kek: Some(hex),
            kek_id: "k".into(),
            retired: None,
            reveal_replay_s: api::settings::DEFAULT_REVEAL_REPLAY_S,
        }
        .kek()
        .map(|_| ())
    };
    for (name, key) in [
        ("all zero (the old docker-compose.yml's)", "00".repeat(32)),
        ("every byte the same", "07".repeat(32)),
        ("a counting sequence", (0u8..32).map(|b| format!("{b:02x}")).collect()),
        ("a short repeated pattern", "deadbeef".repeat(8)),
        ("too short", random_hex(16)),
        ("16 random bytes written twice", random_hex(16).repeat(2)),
        ("a typed password in hex", hex::encode(b"my-super-secret-kek-for-huiyin!!")),
        (
            "a counting run with a random tail",
            format!("{}{}", (0u8..24).map(|b| format!("{b:02x}")).collect::<String>(), random_hex(8)),
        ),
    ] {
        let err = kek(key).expect_err(name);
        assert!(err.starts_with("HUIYIN_KEK"), "{name}: {err}");
    }
    kek(random_hex(32)).expect("a random key");

    let jwt = |secret: &str| api::auth::Authenticator::from_settings(&auth_args(secret)).map(|_| ());
    for (name, secret) in [
        ("the old docker-compose.yml's placeholder", "change-me-to-a-random-secret-of-at-least-32-bytes".to_owned()),
        ("the same, shouted", "CHANGE-ME-TO-A-RANDOM-SECRET-OF-AT-LEAST-32-BYTES".to_owned()),
        ("a placeholder word", format!("please-changeme-{}", random_hex(16))),
        ("the benchmark's old secret", "bench-http-secret-bench-http-secret-000000".to_owned()),
        ("a repeated word", "secret".repeat(8)),
        ("15 distinct bytes", "abcdefghijklmno".repeat(3)),
        ("hex encoding a pattern", "0123456789abcdef".repeat(4)),
        ("hex encoding 24 bytes", random_hex(24)),
        ("too short", "short".to_owned()),
        ("the alphabet and the digits", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ".to_owned()),
        ("a keyboard run backwards", "zyxwvutsrqponmlkjihgfedcbaZYXWVUTSRQPONMLKJIHGFEDCBA".to_owned()),
        ("a random block written twice", "GhVDb05PfXmfwLLbpa9xeMR0".repeat(2)),
        ("a keyboard walk", "qwertyuiopasdfghjklzxcvbnm1234567890".to_owned()),
        ("a sentence", "this is my very secret jwt signing key".to_owned()),
        ("32 random bytes in hex, the same 16 twice", random_hex(16).repeat(2)),
    ] {
        let err = jwt(&secret).expect_err(name);
        assert!(err.starts_with("HUIYIN_JWT_SECRET"), "{name}: {err}");
    }
    jwt(&random_hex(32)).expect("64 random hex digits");
    jwt("GhVDb05PfXmfwLLbpa9xeMR0bXCkp3znh5R5aSuM").expect("random base64");

    // The server itself: a clear configuration error, no panic.
    let db = tests::TestDb::new().await;
    let mut s = tests::app::settings(&db, &random_hex(32));
    s.vault.kek = Some("00".repeat(32));
    let err = api::startup::Application::build(s).await.err().expect("the all-zero KEK is refused");
    assert!(err.to_string().starts_with("configuration: HUIYIN_KEK has every byte the same"), "{err}");
    let mut s = tests::app::settings(&db, "change-me-to-a-random-secret-of-at-least-32-bytes");
    s.vault.kek = Some(random_hex(32));
    let err = api::startup::Application::build(s).await.err().expect("the placeholder secret is refused");
    assert!(err.to_string().starts_with("configuration: HUIYIN_JWT_SECRET is a placeholder"), "{err}");

    // The Ed25519 pair published in tests/fixtures signs nothing: not tokens, not checkpoints.
    let (private, public) =
        (tests::app::fixture("test-ed25519-private.pem"), tests::app::fixture("test-ed25519-public.pem"));
    for (name, args) in [
        (
            "the published public key",
            AuthArgs { jwt_secret: None, jwt_public_key: Some(public.clone()), ..auth_args("") },
        ),
        (
            "the published private key",
            AuthArgs {
                jwt_private_key: Some(private.clone()),
                jwt_public_key: Some(tests::app::test_key_pair().1.clone()),
                jwt_secret: None,
                ..auth_args("")
            },
        ),
    ] {
        let err = api::auth::Authenticator::from_settings(&args).map(|_| ()).expect_err(name);
        assert!(err.contains("published in this repository"), "{name}: {err}");
    }
    // The same key material with other line breaks is the same key.
    let rewrapped = std::env::temp_dir().join(format!("huiyin-rewrapped-{}.pem", Uuid::new_v4().simple()));
    let text = std::fs::read_to_string(&public).unwrap().replace("MCowBQYDK2VwAyEA", "MCowBQYDK2VwAyEA\n");
    std::fs::write(&rewrapped, text).unwrap();
    assert!(api::settings::is_published_key(&std::fs::read(&rewrapped).unwrap()));
    std::fs::remove_file(&rewrapped).unwrap();
    let mut s = tests::app::settings(&db, &random_hex(32));
    s.checkpoints.private_key = Some(private);
    let err = api::startup::Application::build(s).await.err().expect("the published checkpoint key is refused");
    assert!(err.to_string().contains("HUIYIN_CHECKPOINT_PRIVATE_KEY is the test key published"), "{err}");
}

/// RFC 7515 §4.1.11: a recipient that does not understand every extension `crit` names must
/// reject the token. The JWT library ignores `crit`, so the server once accepted such tokens.
#[tokio::test]
async fn a_token_naming_critical_extensions_is_refused() {
    use base64::Engine;
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let sign = |header: Value| {
        let signing_input = format!("{}.{}", b64(&header), b64(&claims(Some(now), now + 600)));
        let key = jsonwebtoken::EncodingKey::from_secret(app.secret.as_bytes());
        let signature =
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256).unwrap();
        format!("{signing_input}.{signature}")
    };
    let plain = sign(json!({"alg": "HS256", "typ": "JWT"}));
    assert_eq!(app.get("/api/v1/units", &plain).await.status, StatusCode::OK, "the same token without crit passes");
    let critical = sign(json!({"alg": "HS256", "typ": "JWT", "crit": ["exp"]}));
    let r = app.get("/api/v1/units", &critical).await;
    r.assert_problem(401, "unauthorized");
    assert!(r.body["detail"].as_str().unwrap().contains("critical"), "{}", r.text);
}

// 2. Token lifetime ------------------------------------------------------------------------

fn claims(iat: Option<i64>, exp: i64) -> Value {
    let mut c = json!({"sub": "supervisor-1", "role": "supervisor", "iss": ISSUER, "aud": AUDIENCE, "exp": exp});
    if let Some(iat) = iat {
        c["iat"] = json!(iat);
    }
    c
}

#[tokio::test]
async fn a_token_living_longer_than_the_cap_issued_in_the_future_or_without_iat_is_refused() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let h = 3600;
    for (name, c, status) in [
        ("11 h", claims(Some(now), now + 11 * h), 200),
        ("iat 3 s ahead (within the leeway)", claims(Some(now + 3), now + h), 200),
        ("issued a day ago, 12 h left: lives 36 h", claims(Some(now - 24 * h), now + 12 * h), 401),
        ("13 h", claims(Some(now), now + 13 * h), 401),
        ("ten years", claims(Some(now), now + 3650 * 24 * h), 401),
        ("no iat", claims(None, now + h), 401),
        ("iat in the future", claims(Some(now + 600), now + h), 401),
        ("iat at the dawn of time", claims(Some(i64::MIN), now + h), 401),
        // A fresh reviewer's findings: a zero lifetime was taken (for the leeway's seconds),
        // and an array `aud`, which RFC 7519 §4.1.3 allows, was refused.
        ("exp == iat: no lifetime", claims(Some(now), now), 401),
        ("exp before iat", claims(Some(now), now - 1), 401),
        ("aud as an array naming the server", json!({"aud": ["other-api", AUDIENCE]}), 200),
        ("aud as an array without the server", json!({"aud": ["other-api"]}), 401),
    ] {
        let c = if c.get("sub").is_none() {
            let mut full = claims(Some(now), now + h);
            full["aud"] = c["aud"].clone();
            full
        } else {
            c
        };
        let r = app.get("/api/v1/units", &app.token_with(c)).await;
        assert_eq!(r.status.as_u16(), status, "{name}: {}", r.text);
        if status == 401 {
            r.assert_problem(401, "unauthorized");
        }
    }
    // The cap is configurable.
    let app = spawn_app_with(|s| s.auth.max_ttl_s = 600).await;
    assert_eq!(app.get("/api/v1/units", &app.token_with(claims(Some(now), now + 300))).await.status, StatusCode::OK);
    let r = app.get("/api/v1/units", &app.token_with(claims(Some(now), now + 900))).await;
    r.assert_problem(401, "unauthorized");
}

#[test]
fn huiyin_token_refuses_a_ttl_over_the_cap_and_never_panics() {
    for huge in ["99999999999999d", "99999999999999999999d", "9223372036854775807s", "367d"] {
        let err = api::cli::parse_ttl(huge).expect_err(huge);
        assert!(err.contains("too long"), "{huge}: {err}");
    }
    for bad in ["", "0h", "-5m", "8y", "d"] {
        assert!(api::cli::parse_ttl(bad).is_err(), "{bad:?}");
    }
    assert_eq!(api::cli::parse_ttl("8h"), Ok(chrono::Duration::hours(8)));

    let auth = auth_args(&random_hex(32));
    let err = api::cli::token("dev-clerk", "clerk", None, "2d", &auth).expect_err("2 days is over the 12 h default");
    assert!(err.contains("HUIYIN_JWT_MAX_TTL_S"), "{err}");
    assert!(api::cli::token("dev-clerk", "clerk", None, "99999999999999d", &auth).is_err());
    api::cli::token("dev-clerk", "clerk", None, "12h", &auth).expect("12 h is the cap");
    let signer = api::auth::Authenticator::from_settings(&auth).unwrap();
    assert!(signer.sign("dev-clerk", Role::Clerk, None, chrono::Duration::hours(13)).is_err());
    let mut short = auth.clone();
    short.max_ttl_s = 60;
    assert!(api::cli::token("dev-clerk", "clerk", None, "2m", &short).is_err(), "a configured cap is the limit");
    short.max_ttl_s = 0;
    assert!(api::auth::Authenticator::from_settings(&short).is_err(), "a zero cap is a configuration error");
}

// 3. No submitted value in error bodies or logs ------------------------------------------

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn encoded(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[tokio::test]
async fn no_error_body_or_log_line_echoes_a_submitted_value() {
    let capture = Capture::default();
    // This test's process gets this subscriber; spawn_app's own init is then a no-op.
    tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .try_init()
        .unwrap();
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let sup = app.token("supervisor", None);
    let id = app.register(app.case_body()).await;
    let secrets = ["13900000000", "赵某甲", "13911112222", "13922223333", "13933334444", "13955556666", "13966667777"];
    let with = |k: &str, v: Value| {
        let mut b = app.case_body();
        b[k] = v;
        b
    };
    let mut replies = Vec::new();

    // JSON bodies: a value of the wrong type, an enum out of range, an unknown field, bad formats.
    // Each error names the field by its path (the object, for an unknown key), never the value.
    for (name, body, field, says) in [
        (
            "a phone as a number",
            with("complainant", json!({"name": "赵某甲", "phone": 13900000000u64})),
            "complainant.phone",
            "invalid type: expected a string, found integer",
        ),
        (
            "a name as a number",
            with("complainant", json!({"name": 13911112222u64, "phone": "13812345678"})),
            "complainant.name",
            "expected a string",
        ),
        (
            "an unknown channel",
            with("channel", json!("赵某甲13922223333")),
            "channel",
            "unknown variant, expected one of",
        ),
        (
            "an unknown field named like a value",
            with("complainant", json!({"name": "赵某甲", "13933334444": "赵某甲"})),
            "complainant",
            "unknown field",
        ),
        ("a bad UUID", with("village_id", json!("赵某甲13955556666")), "village_id", "UUID"),
        ("a bad time", with("received_at", json!("赵某甲13966667777")), "received_at", "invalid"),
        ("a title as a number", with("title", json!(13900000000u64)), "title", "expected a string"),
        (
            "a missing field",
            json!({"channel": "phone", "kind": "complaint", "description": "赵某甲 13900000000"}),
            "title",
            "is required",
        ),
    ] {
        let r = app.post("/api/v1/cases", &clerk, body).await;
        r.assert_problem(422, "validation");
        assert_eq!(r.body["errors"][0]["field"], field, "{name}: {}", r.text);
        let message = r.body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{name}: {message}");
        assert!(message.contains("line 1, column"), "{name}: the position is given: {message}");
        replies.push((name.to_owned(), r.text));
    }
    // Malformed JSON quoting a value.
    for (name, raw) in [
        ("a bare word", r#"{"title": 赵某甲13900000000}"#),
        ("cut short", r#"{"title": "赵某甲13900000000"#),
        ("a bad escape", r#"{"title": "赵某甲\q13900000000"}"#),
    ] {
        let r = app
            .client
            .post(format!("{}/api/v1/cases", app.address))
            .bearer_auth(&clerk)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{name}");
        replies.push((name.to_owned(), r.text().await.unwrap()));
    }
    // Query strings and path parameters.
    for (path, code) in [
        (format!("/api/v1/units?include_inactive={}", encoded("赵某甲13900000000")), "invalid-query"),
        (format!("/api/v1/ledger?received_from={}", encoded("13911112222")), "invalid-query"),
        (format!("/api/v1/ledger?status={}", encoded("赵某甲13922223333")), "invalid-query"),
        ("/api/v1/ledger?limit=13933334444".to_owned(), "invalid-query"),
        (format!("/api/v1/cases/{}", encoded("赵某甲13955556666")), "invalid-path"),
        ("/api/v1/cases/13966667777".to_owned(), "invalid-path"),
        ("/api/v1/calendar/13900000000".to_owned(), "invalid-path"),
        (format!("/api/v1/cases/{id}?as_of={}", encoded("赵某甲13911112222")), "invalid-query"),
    ] {
        let r = app.get(&path, &sup).await;
        r.assert_problem(400, code);
        replies.push((path, r.text));
    }
    for (name, text) in &replies {
        for s in secrets {
            assert!(!text.contains(s) && !text.contains(&encoded(s)), "{name} echoes {s}: {text}");
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(logs.contains("/api/v1/cases/{id}"), "request lines name the route");
    for s in secrets {
        assert!(!logs.contains(s) && !logs.contains(&encoded(s)), "the logs hold {s}");
    }
}

#[test]
fn serde_messages_are_described_without_their_values() {
    use api::problem::{describe_serde_error, redact_values};
    let d = |m: &str| describe_serde_error(m);
    assert_eq!(
        d("invalid type: integer `13900000000`, expected a string").message,
        "invalid type: expected a string, found integer"
    );
    assert_eq!(
        d(r#"invalid value: string "赵某, expected x", expected a valid phone"#).message,
        "invalid value: expected a valid phone, found string"
    );
    assert_eq!(
        d("unknown variant `赵某`, expected one of `phone`, `letter`").message,
        "unknown variant, expected one of `phone`, `letter`"
    );
    assert_eq!(
        d("unknown field `13900000000`, expected `name` or `phone`").message,
        "unknown field, expected `name` or `phone`"
    );
    assert_eq!(d("invalid length 13900000000, expected 3 elements").message, "invalid length, expected 3 elements");
    let missing = d("missing field `title`");
    assert_eq!((missing.field.as_deref(), missing.message.as_str()), (Some("title"), "is required"));
    assert_eq!(d(r#"can not parse "13900000000" to a u32"#).message, "can not parse … to a u32");
    assert_eq!(redact_values("value 13900000000 of 赵某 is out of range"), "value … of … is out of range");
    assert_eq!(redact_values("must be at most 5000 characters"), "must be at most 5000 characters");
    assert_eq!(
        api::problem::without_db_details("db error: ERROR: x\nDETAIL: Failing row contains (赵某).\nHINT: y"),
        "db error: ERROR: x\nDETAIL: (redacted)\nHINT: y"
    );
}

// 4. Cache-Control -----------------------------------------------------------------------------

#[tokio::test]
async fn every_response_under_api_v1_says_no_store() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let r = app.post("/api/v1/cases", &app.token("clerk", None), app.case_body()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("cache-control"), Some("no-store"), "POST /cases");
    let id = r.body["id"].as_str().unwrap().to_owned();
    for path in [
        format!("/api/v1/cases/{id}"),
        format!("/api/v1/cases/{id}/events"),
        format!("/api/v1/cases/{id}/verify"),
        "/api/v1/ledger".into(),
        "/api/v1/overdue".into(),
        "/api/v1/stats".into(),
        "/api/v1/events".into(),
        "/api/v1/units".into(),
        "/api/v1/nothing-here".into(),
        "/api/v1/cases/not-a-uuid".into(),
    ] {
        let r = app.get(&path, &sup).await;
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}: {} {}", r.status, r.text);
    }
    let r = app.send(Method::GET, "/api/v1/ledger", None, None, &[]).await;
    assert_eq!((r.status, r.header("cache-control")), (StatusCode::UNAUTHORIZED, Some("no-store")), "a 401");
    for accept in ["text/csv", api::routes::ledger::XLSX] {
        let r = app.send(Method::GET, "/api/v1/ledger", Some(&sup), None, &[("accept", accept)]).await;
        assert_eq!((r.status, r.header("cache-control")), (StatusCode::OK, Some("no-store")), "{accept}");
    }
    let r = app
        .post(
            &format!("/api/v1/cases/{id}/complainant/reveal"),
            &sup,
            json!({"purpose_code": "verify_identity", "purpose": "核实身份"}),
        )
        .await;
    assert_eq!((r.status, r.header("cache-control")), (StatusCode::OK, Some("no-store")), "reveal");
    let stream =
        app.client.get(format!("{}/api/v1/events/stream", app.address)).bearer_auth(&sup).send().await.unwrap();
    assert_eq!(stream.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "the stream");
}

// 5. The XLSX temporary file and a reveal's purpose -------------------------------------------

async fn register_many(app: &TestApp, n: usize) {
    let clerk = app.token("clerk", None);
    for chunk in (0..n).collect::<Vec<_>>().chunks(25) {
        let posts = chunk.iter().map(|i| {
            let mut body = app.case_body();
            body["title"] = json!(format!("第{i}号：村道路灯不亮"));
            app.post("/api/v1/cases", &clerk, body)
        });
        for r in futures_util::future::join_all(posts).await {
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        }
    }
}

#[tokio::test]
async fn the_xlsx_export_is_never_readable_by_others_while_it_is_built() {
    let app = spawn_app().await;
    register_many(&app, 300).await;
    let sup = app.token("supervisor", None);
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<(PathBuf, u32)>::new()));
    // Watches the temp dir for the export's file while exports run.
    let watcher = {
        let (stop, seen) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else { continue };
                for e in dir.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.starts_with("huiyin-export-")
                        && let Ok(m) = e.metadata()
                    {
                        seen.lock().unwrap().push((e.path(), m.permissions().mode() & 0o777));
                    }
                }
            }
        })
    };
    for _ in 0..5 {
        let r = app
            .client
            .get(format!("{}/api/v1/ledger", app.address))
            .bearer_auth(&sup)
            .header("accept", api::routes::ledger::XLSX)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let bytes = r.bytes().await.unwrap();
        assert!(bytes.starts_with(b"PK"), "an XLSX (zip) file");
    }
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let seen = seen.lock().unwrap();
    let open: Vec<_> = seen.iter().filter(|(_, m)| m & 0o077 != 0).collect();
    assert!(open.is_empty(), "export files readable by others: {open:?} (of {} sightings)", seen.len());
}

#[test]
fn the_temporary_export_file_is_0600_and_nameless() {
    let before: HashSet<_> = std::fs::read_dir(std::env::temp_dir()).unwrap().flatten().map(|e| e.path()).collect();
    let mut f = api::routes::ledger::private_temp_file().unwrap();
    f.write_all(b"data").unwrap();
    assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    let after: HashSet<_> = std::fs::read_dir(std::env::temp_dir()).unwrap().flatten().map(|e| e.path()).collect();
    let ours: Vec<_> = after.difference(&before).filter(|p| p.to_string_lossy().contains("huiyin-export-")).collect();
    assert!(ours.is_empty(), "the file has no name left: {ours:?}");
    // rust_xlsxwriter's own rows file is nameless but 0644: it is made in a folder of ours, 0700
    // (a fresh reviewer saw the 0644 file, in /tmp, while an export ran).
    let dir = api::routes::ledger::export_dir().unwrap();
    assert_eq!(std::fs::metadata(dir).unwrap().permissions().mode() & 0o777, 0o700);
}

#[tokio::test]
async fn a_reveal_needs_a_purpose_of_at_least_four_letters() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let id = app.register(app.case_body()).await;
    let reveal = format!("/api/v1/cases/{id}/complainant/reveal");
    // A fresh reviewer's finding: "aaaa" and "xxxxxxxxxxx" were taken; a reason needs three
    // different letters among its four.
    for purpose in [
        ".",
        "x",
        "核实",
        "abc",
        "1234",
        "!!!!",
        "1 2 3 4 a",
        "核。实。",
        "....",
        "aaaa",
        "xxxxxxxxxxx",
        "AaAa",
        "哈哈哈哈",
    ] {
        let r = app.post(&reveal, &sup, json!({"purpose_code": "verify_identity", "purpose": purpose})).await;
        r.assert_problem(422, "validation");
        assert_eq!(r.body["errors"][0]["field"], "purpose", "{purpose:?}: {}", r.text);
    }
    // Who may reveal is answered before what they wrote.
    app.post(&reveal, &app.token("clerk", None), json!({"purpose_code": "verify_identity", "purpose": "."}))
        .await
        .assert_problem(403, "forbidden");
    for purpose in ["核实身份", "verify the identity", "核实 ID"] {
        let r = app.post(&reveal, &sup, json!({"purpose_code": "verify_identity", "purpose": purpose})).await;
        assert_eq!(r.status, StatusCode::OK, "{purpose:?}: {}", r.text);
    }
    // The reason is a code from the documented list; words alone ("abcd" has four letters)
    // state none, nor does a code outside the list.
    let r = app.post(&reveal, &sup, json!({"purpose": "abcd"})).await;
    r.assert_problem(422, "validation");
    assert!(r.text.contains("purpose_code"), "{}", r.text);
    let r = app.post(&reveal, &sup, json!({"purpose_code": "curiosity", "purpose": "想知道是谁"})).await;
    r.assert_problem(422, "validation");
    use api::routes::integrity::is_stated_purpose;
    assert!(!is_stated_purpose("."));
    assert!(!is_stated_purpose("核实身"));
    assert!(is_stated_purpose("核实身份"));
    assert!(is_stated_purpose("abcd"));
    assert!(!is_stated_purpose("12345678"));
}
