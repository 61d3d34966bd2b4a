//! A real HTTP receiver for the tests of outgoing deliveries (webhooks, the SMS gateway): an
//! actix-web server on a free port that records every request it gets and answers as told.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

/// A request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path.
    pub path: String,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// How the receiver answers.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// The status of every answer.
    pub status: u16,
    /// The body of every answer.
    pub body: String,
    /// How long it waits before answering.
    pub delay: Duration,
}

impl Behaviour {
    /// 200 with `{"Code":"OK"}` (what SMS gateways answer on success).
    pub fn ok() -> Self {
        Self { status: 200, body: r#"{"Code":"OK","Message":"OK"}"#.into(), delay: Duration::ZERO }
    }
    /// Always this status.
    pub fn status(status: u16) -> Self {
        Self { status, body: "{}".into(), delay: Duration::ZERO }
    }
}

/// A running receiver.
pub struct Receiver {
    /// Its base URL.
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Receiver {
    /// Starts a receiver that answers as `behaviour` says.
    pub fn start(behaviour: Behaviour) -> Self {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let behaviour = Arc::new(Mutex::new(behaviour));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (g, b) = (got.clone(), behaviour.clone());
        let server = HttpServer::new(move || {
            let (g, b) = (g.clone(), b.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (g, b) = (g.clone(), b.clone());
                async move {
                    let answer = b.lock().unwrap().clone();
                    if !answer.delay.is_zero() {
                        tokio::time::sleep(answer.delay).await;
                    }
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default().to_owned()))
                        .collect();
                    g.lock().unwrap().push(Received { path: req.path().to_owned(), headers, body: body.to_vec() });
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(answer.status).unwrap())
                        .content_type("application/json")
                        .body(answer.body)
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self { url: format!("http://127.0.0.1:{port}"), got, behaviour }
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Changes how it answers from now on.
    pub fn answer(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    /// Waits until `done` holds for what was received, or panics after `secs` seconds.
    pub async fn wait_for(&self, secs: u64, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..secs * 20 {
            let got = self.received();
            if done(&got) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: not seen within {secs} s; got {} requests", self.received().len());
    }
}
