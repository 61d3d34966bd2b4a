//! No personal data in logs or traces: a run's captured logs, at every level, never contain a
//! complainant's name or phone number.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tests::app::spawn_app;

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

#[tokio::test]
async fn a_runs_captured_logs_hold_no_complainant_name_or_phone() {
    let capture = Capture::default();
    // This test's process gets this subscriber; spawn_app's own init is then a no-op.
    tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .try_init()
        .unwrap();
    let app = spawn_app().await;
    let (name, phone) = ("钱日志", "13511112222");
    let mut body = app.case_body();
    body["complainant"] = json!({"name": name, "phone": phone, "id_number": "11010519491231002X"});
    let id = app.register(body.clone()).await;
    let sup = app.token("supervisor", None);
    // Bad inputs echo serde's words back to the caller; they must not reach the log either.
    let mut bad = body.clone();
    bad["complainant"] = json!({"name": name, "phone": phone, "extra": phone});
    assert_eq!(app.post("/api/v1/cases", &sup, bad).await.status.as_u16(), 422);
    let r = app
        .post(
            &format!("/api/v1/cases/{id}/complainant/reveal"),
            &sup,
            json!({"purpose_code": "verify_identity", "purpose": "核实身份"}),
        )
        .await;
    assert_eq!(r.body["phone"], phone);
    app.get(&format!("/api/v1/cases/{id}"), &sup).await;
    app.get(&format!("/api/v1/cases/{id}/events"), &sup).await;
    app.get("/api/v1/events", &sup).await;
    app.get("/api/v1/ledger", &sup).await;
    app.post(&format!("/api/v1/cases/{id}/complainant/erase"), &app.token("admin", None), json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(logs.len() > 1000, "the capture saw the run's logs ({} bytes)", logs.len());
    assert!(logs.contains("request"), "request lines are logged");
    for secret in [name, phone, "11010519491231002X"] {
        assert!(!logs.contains(secret), "the logs hold {secret}");
    }
}
