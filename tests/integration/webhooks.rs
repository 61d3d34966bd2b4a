//! Signed webhooks (issue 12): a real receiver sees every event of a run once by feed position
//! across a SIGKILL of the server; signatures can be checked; a dead endpoint is disabled.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use tests::app::{TestApp, spawn_app, spawn_app_with};
use tests::receiver::{Behaviour, Received, Receiver};

async fn register_hook(app: &TestApp, url: &str, event_types: Value) -> (String, String) {
    let r =
        app.post("/api/v1/webhooks", &app.token("admin", None), json!({"url": url, "event_types": event_types})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    (r.body["endpoint"]["id"].as_str().unwrap().to_owned(), r.body["secret"].as_str().unwrap().to_owned())
}

/// Verifies `Huiyin-Signature: t=…,v1=…` the way a receiver would, with the shared secret.
fn signature_ok(secret: &str, r: &Received) -> bool {
    let Some(sig) = r.header("huiyin-signature") else { return false };
    let mut t = None;
    let mut v1 = None;
    for part in sig.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = Some(x.to_owned()),
            Some(("v1", x)) => v1 = Some(x.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&r.body);
    hex::decode(v1).is_ok_and(|given| mac.verify_slice(&given).is_ok())
}

/// The feed positions of the log's case events, from the database.
async fn case_positions(app: &TestApp) -> BTreeSet<String> {
    let c = app.db.super_client().await;
    c.query("SELECT tx_id::text || '.' || position::text FROM events WHERE event_type LIKE 'case.%'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn deliveries_are_signed_filtered_and_in_feed_order() {
    let app = spawn_app().await;
    let receiver = Receiver::start(Behaviour::status(204));
    let (endpoint, secret) =
        register_hook(&app, &format!("{}/hook", receiver.url), json!(["case.received", "case.accepted"])).await;
    let id = app
        .register(json!({"channel": "phone", "kind": "complaint", "title": "t", "description": "d", "accept": true}))
        .await;
    app.post(&format!("/api/v1/cases/{id}/notes"), &app.token("clerk", None), json!({"text": "不推送"})).await;
    let got = receiver.wait_for(20, "two deliveries", |r| r.len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got_now = receiver.received();
    assert_eq!(
        got_now.len(),
        2,
        "only the filtered types: {:?}",
        got_now.iter().map(|r| r.header("huiyin-event-type")).collect::<Vec<_>>()
    );
    assert_eq!(got[0].header("huiyin-event-type"), Some("case.received"));
    assert_eq!(got[1].header("huiyin-event-type"), Some("case.accepted"));
    for r in &got {
        assert!(signature_ok(&secret, r), "a valid signature");
        assert_eq!(r.header("huiyin-endpoint"), Some(endpoint.as_str()));
        let body = r.json();
        assert_eq!(body["feed_position"].as_str(), r.header("huiyin-feed-position"));
        assert_eq!(body["case_id"], id.to_string());
        assert!(body["payload"].get("complainant").is_none(), "no sealed data in deliveries");
    }
    // A wrong signature is detectable: a changed body, another secret, another timestamp.
    let mut tampered = got[0].clone();
    tampered.body[10] ^= 1;
    assert!(!signature_ok(&secret, &tampered));
    assert!(!signature_ok("another-secret", &got[0]));
    let mut replayed = got[0].clone();
    let sig = replayed.header("huiyin-signature").unwrap().to_owned();
    let forged = sig.replacen("t=", "t=1", 1);
    replayed.headers.retain(|(k, _)| k != "huiyin-signature");
    replayed.headers.push(("huiyin-signature".into(), forged));
    assert!(!signature_ok(&secret, &replayed));
    // The endpoint's cursor and count moved.
    let r = app.get(&format!("/api/v1/webhooks/{endpoint}"), &app.token("admin", None)).await;
    assert_eq!(r.body["delivered"], 2, "{}", r.text);
    assert_eq!(r.body["last_status"], 204);
}

#[tokio::test]
async fn a_dead_endpoint_is_disabled_with_a_record_and_resumes_when_enabled() {
    let app = spawn_app_with(|s| {
        s.public.webhook_disable_after = 3;
        s.public.webhook_retry_base_s = 0;
    })
    .await;
    let receiver = Receiver::start(Behaviour::status(500));
    let (endpoint, _) = register_hook(&app, &receiver.url, json!([])).await;
    let id = app.register(json!({"channel": "phone", "kind": "complaint", "title": "t", "description": "d"})).await;
    receiver.wait_for(20, "three attempts", |r| r.len() >= 3).await;
    let admin = app.token("admin", None);
    let mut view = Value::Null;
    for _ in 0..100 {
        view = app.get(&format!("/api/v1/webhooks/{endpoint}"), &admin).await.body;
        if view["active"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(view["active"], false, "{view}");
    assert_eq!(view["delivered"], 0);
    assert_eq!(view["last_status"], 500);
    assert!(
        view["disabled_reason"].as_str().unwrap().starts_with("disabled after 3 consecutive failed deliveries"),
        "{view}"
    );
    let records: i64 = app
        .db
        .super_client()
        .await
        .query_one("SELECT count(*) FROM webhook_disablements WHERE endpoint_id = $1::text::uuid", &[&endpoint])
        .await
        .unwrap()
        .get(0);
    assert_eq!(records, 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 3, "a disabled endpoint gets nothing");
    // Repaired and enabled, it resumes where it stopped: the same event first.
    receiver.answer(Behaviour::status(200));
    let r = app.post(&format!("/api/v1/webhooks/{endpoint}/enable"), &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let got = receiver
        .wait_for(20, "the resumed delivery", |r| {
            r.iter().any(|x| x.header("huiyin-event-type") == Some("case.received") && r.len() > 3)
        })
        .await;
    assert_eq!(got[3].header("huiyin-feed-position"), got[0].header("huiyin-feed-position"));
    assert_eq!(got[3].json()["case_id"], id.to_string());
}

/// `huiyin serve` on the test's database as a process of its own, to be killed with SIGKILL.
struct Server {
    child: std::process::Child,
}

impl Server {
    async fn start(app: &TestApp) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = std::process::Command::new(crate::reliability::huiyin_bin())
            .arg("serve")
            .env("DATABASE_URL", app.db.app_settings().url.expose())
            .env("HUIYIN_BIND", format!("127.0.0.1:{port}"))
            .env("HUIYIN_METRICS_BIND", "127.0.0.1:0")
            .env("HUIYIN_JWT_SECRET", &app.secret)
            .env("HUIYIN_JWT_ISSUER", tests::app::ISSUER)
            .env("HUIYIN_JWT_AUDIENCE", tests::app::AUDIENCE)
            .env("HUIYIN_KEK", app.kek.as_deref().unwrap())
            .env("HUIYIN_MIGRATE_ON_START", "false")
            .env("HUIYIN_LOG", "warn")
            .env("HUIYIN_WEBHOOK_RETRY_BASE_S", "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let c = reqwest::Client::builder().no_proxy().build().unwrap();
        for _ in 0..400 {
            if c.get(format!("http://127.0.0.1:{port}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
                return Self { child };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("huiyin serve did not become ready");
    }

    fn kill(mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_receiver_sees_every_event_once_by_position_across_a_server_kill() {
    // The test's own server delivers nothing: the workers of the processes under test do.
    let app = spawn_app_with(|s| s.notices.workers = false).await;
    // A slow receiver (30 ms an event), so the kill lands in the middle of the run.
    let receiver = Receiver::start(Behaviour { status: 200, body: "{}".into(), delay: Duration::from_millis(30) });
    let (_, secret) = register_hook(&app, &receiver.url, json!(["case."])).await;
    for i in 0..20 {
        let mut body = app.case_body();
        body["title"] = json!(format!("第{i}件"));
        body["accept"] = json!(true);
        app.register(body).await;
    }
    let server = Server::start(&app).await;
    receiver.wait_for(20, "the first deliveries", |r| r.len() >= 10).await;
    server.kill();
    let at_kill = receiver.received().len();
    // More events while no worker runs, then the server again.
    for i in 20..25 {
        let mut body = app.case_body();
        body["title"] = json!(format!("第{i}件"));
        app.register(body).await;
    }
    let expected = case_positions(&app).await;
    let server = Server::start(&app).await;
    let got = receiver
        .wait_for(60, "every event", |r| {
            let seen: BTreeSet<&str> = r.iter().filter_map(|x| x.header("huiyin-feed-position")).collect();
            seen.len() >= expected.len()
        })
        .await;
    server.kill();
    // Deduped by position, the receiver saw exactly the log's case events, each with the same
    // body every time it saw it, all signed.
    let mut by_position: BTreeMap<String, Vec<&Received>> = BTreeMap::new();
    for r in &got {
        assert!(signature_ok(&secret, r));
        by_position.entry(r.header("huiyin-feed-position").unwrap().to_owned()).or_default().push(r);
    }
    let seen: BTreeSet<String> = by_position.keys().cloned().collect();
    assert_eq!(seen, expected, "every case event of the run, and nothing else");
    for (p, copies) in &by_position {
        assert!(copies.iter().all(|c| c.body == copies[0].body), "one event per position: {p}");
    }
    let doubled = got.len() - by_position.len();
    assert!(doubled <= 1, "at most the event in flight at the kill comes twice; {doubled} did (kill after {at_kill})");
    // In feed order, per the receiver's arrival order, once deduped.
    let order: Vec<&str> = got.iter().filter_map(|r| r.header("huiyin-feed-position")).collect();
    let mut firsts: Vec<&str> = Vec::new();
    for p in order {
        if !firsts.contains(&p) {
            firsts.push(p);
        }
    }
    let key = |p: &str| -> (i64, i64) {
        let (t, q) = p.split_once('.').unwrap();
        (t.parse().unwrap(), q.parse().unwrap())
    };
    assert!(firsts.windows(2).all(|w| key(w[0]) < key(w[1])), "deliveries follow the feed's order");
}

#[tokio::test]
async fn a_webhook_may_not_aim_at_the_services_own_network() {
    let app = spawn_app_with(|s| s.public.webhook_allow_private = false).await;
    let admin = app.token("admin", None);
    for url in [
        "http://127.0.0.1:5432/",
        "http://0x7f000001:9464/metrics",
        "http://[::1]:8080/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost:8080/",
        "http://printer.local/",
    ] {
        let r = app.post("/api/v1/webhooks", &admin, json!({"url": url})).await;
        r.assert_problem(422, "validation");
        assert!(r.text.contains("must name a public host"), "{url}: {}", r.text);
    }
    let r = app.post("/api/v1/webhooks", &admin, json!({"url": "https://platform.example.cn/hook"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}
