//! Notices that reach people (issue 12): the outbox written with the events that owe a notice,
//! sent by a real SMTP server and a real HTTP SMS gateway, once, retried, recorded as events.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tests::app::{TestApp, spawn_app_with};
use tests::receiver::{Behaviour, Receiver};
use tests::smtp::SmtpSink;
use uuid::Uuid;

fn with_smtp(sink: &SmtpSink) -> impl FnOnce(&mut api::settings::ServeArgs) + use<> {
    let port = sink.port;
    move |s| {
        s.notices.smtp_host = Some("127.0.0.1".into());
        s.notices.smtp_port = port;
        s.notices.smtp_from = "回音 <noreply@huiyin.test>".into();
    }
}

const SMS_SECRET: &str = "gateway-secret-for-the-tests";

fn with_gateway(url: &str, attempts: u32) -> impl FnOnce(&mut api::settings::ServeArgs) + use<> {
    let url = format!("{url}/sms/send");
    move |s| {
        s.notices.sms_gateway_url = Some(url);
        s.notices.sms_access_key = "test-access-key".into();
        s.notices.sms_secret = Some(SMS_SECRET.into());
        s.notices.max_attempts = attempts;
        s.notices.retry_base_s = 1;
    }
}

async fn events(app: &TestApp, id: Uuid) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/cases/{id}/events"), &app.token("supervisor", None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["events"].as_array().unwrap().clone()
}

async fn wait_for_event(app: &TestApp, id: Uuid, event_type: &str) -> Value {
    for _ in 0..400 {
        if let Some(e) = events(app, id).await.into_iter().find(|e| e["event_type"] == event_type) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{event_type} not recorded within 20 s");
}

async fn outbox(app: &TestApp, id: Uuid) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/cases/{id}/notices/outbox"), &app.token("supervisor", None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body.as_array().unwrap().clone()
}

fn case_with(complainant: Value, accept: bool) -> Value {
    json!({
        "channel": "phone", "kind": "complaint", "title": "低保评定不公开",
        "description": "本村低保评定没有张榜公示。", "complainant": complainant, "accept": accept
    })
}

#[tokio::test]
async fn an_acknowledgement_reaches_the_smtp_server_exactly_once_across_a_worker_restart() {
    let sink = SmtpSink::start();
    let app = spawn_app_with(with_smtp(&sink)).await;
    let id = app.register(case_with(json!({"name": "张三", "email": "zhangsan@example.cn"}), true)).await;
    let case = app.get(&format!("/api/v1/cases/{id}"), &app.token("clerk", None)).await.body;
    let code = case["receipt_code"].as_str().unwrap().to_owned();

    let mails = sink.wait_for(1, 20).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_tos, ["zhangsan@example.cn"]);
    assert_eq!(mails[0].mail_from, "noreply@huiyin.test");
    assert_eq!(mails[0].subject, format!("您反映的问题已受理（{code}）"));
    assert!(mails[0].body.contains(&format!("受理编号 {code}")), "{}", mails[0].body);
    // The due date is the overall limit, 60 calendar days from acceptance (信访工作条例 art. 32).
    let due = (chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        + chrono::Duration::days(60))
    .format("%Y-%m-%d")
    .to_string();
    assert!(mails[0].body.contains(&due), "due {due}: {}", mails[0].body);

    // The delivery is an event on the case, naming the outbox item the mail's Message-ID carries.
    let delivered = wait_for_event(&app, id, "case.notice_delivered").await;
    let outbox_id = delivered["payload"]["outbox_id"].as_str().unwrap().to_owned();
    assert_eq!(mails[0].message_id.as_deref(), Some(format!("<{outbox_id}@huiyin>").as_str()));
    assert_eq!(delivered["payload"]["notice"], "acknowledgement");
    assert_eq!(delivered["payload"]["channel"], "email");
    assert_eq!(delivered["payload"]["attempts"], 1);
    let items = outbox(&app, id).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["state"], "delivered");
    // A delivered acknowledgement is the notice of acceptance: its clock stops.
    let case = app.get(&format!("/api/v1/cases/{id}"), &app.token("clerk", None)).await.body;
    assert!(case["acknowledged_at"].is_string(), "{case}");

    // The worker restarts (another instance on the same database, the first still running):
    // nothing is sent again.
    app.spawn_another(with_smtp(&sink)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.mails().len(), 1, "the acknowledgement was sent again");
    let delivered: Vec<Value> =
        events(&app, id).await.into_iter().filter(|e| e["event_type"] == "case.notice_delivered").collect();
    assert_eq!(delivered.len(), 1);
}

#[tokio::test]
async fn no_notice_leaves_before_its_transaction_commits() {
    let sink = SmtpSink::start();
    let app = spawn_app_with(with_smtp(&sink)).await;
    let id = app.register(case_with(json!({"name": "李四", "email": "lisi@example.cn"}), false)).await;
    // Another transaction holds the idempotency key the acceptance will record: the append inserts
    // its events, its ledger row and its outbox item, then waits on the key until that
    // transaction ends.
    let mut holder = app.db.super_client().await;
    let hold = holder.transaction().await.unwrap();
    hold.execute(
        "INSERT INTO idempotency_keys (scope, key, request_hash, case_id, first_version, last_version) \
         VALUES ('clerk-', 'hold-the-commit', '\\x00', $1, 1, 1)",
        &[&Uuid::new_v4()],
    )
    .await
    .unwrap();
    let (address, token, client) = (app.address.clone(), app.token("clerk", None), app.client.clone());
    let accept = tokio::spawn(async move {
        client
            .post(format!("{address}/api/v1/cases/{id}/accept"))
            .bearer_auth(token)
            .header("Idempotency-Key", "hold-the-commit")
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .status()
    });
    let watcher = app.db.super_client().await;
    let mut waiting = false;
    for _ in 0..200 {
        let n: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' \
                   AND query LIKE '%append_events%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(waiting, "the acceptance's append waits on the held key");
    // Ten polls of the worker later, nothing left and the outbox shows nothing to anyone else.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(sink.mails().is_empty(), "a notice left before its transaction committed");
    let seen: i64 = watcher.query_one("SELECT count(*) FROM outbox WHERE case_id = $1", &[&id]).await.unwrap().get(0);
    assert_eq!(seen, 0, "the outbox item is visible before its commit");
    hold.rollback().await.unwrap();
    assert_eq!(accept.await.unwrap(), StatusCode::OK);
    let mails = sink.wait_for(1, 20).await;
    assert_eq!(mails[0].rcpt_tos, ["lisi@example.cn"]);
}

/// Checks the gateway signature independently of the server's code.
fn check_signature(r: &tests::receiver::Received) {
    let ts = r.header("x-sms-timestamp").unwrap();
    let nonce = r.header("x-sms-nonce").unwrap();
    let to_sign = format!("POST\n/sms/send\n{ts}\n{nonce}\n{}", hex::encode(Sha256::digest(&r.body)));
    let mut mac = Hmac::<Sha256>::new_from_slice(SMS_SECRET.as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(r.header("x-sms-signature"), Some(expected.as_str()), "the gateway request is signed");
    assert_eq!(r.header("x-sms-access-key"), Some("test-access-key"));
}

#[tokio::test]
async fn a_text_message_goes_to_the_gateway_once_signed_with_its_template() {
    let gateway = Receiver::start(Behaviour::ok());
    let app = spawn_app_with(with_gateway(&gateway.url, 5)).await;
    let id = app.register(case_with(json!({"name": "王五", "phone": "139 1234 5678"}), true)).await;
    let code = app.get(&format!("/api/v1/cases/{id}"), &app.token("clerk", None)).await.body["receipt_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = gateway.wait_for(20, "the text message", |r| !r.is_empty()).await;
    let r = &got[0];
    assert_eq!(r.path, "/sms/send");
    check_signature(r);
    let body = r.json();
    assert_eq!(body["PhoneNumbers"], "139 1234 5678");
    assert_eq!(body["TemplateCode"], "acknowledgement");
    assert_eq!(body["SignName"], "回音");
    let params: Value = serde_json::from_str(body["TemplateParam"].as_str().unwrap()).unwrap();
    assert_eq!(params["receipt_code"], code.as_str());
    assert!(body["Content"].as_str().unwrap().contains(&code), "{body}");
    let delivered = wait_for_event(&app, id, "case.notice_delivered").await;
    assert_eq!(body["OutId"], delivered["payload"]["outbox_id"]);
    assert_eq!(delivered["payload"]["channel"], "sms");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(gateway.received().len(), 1, "sent once");
}

#[tokio::test]
async fn a_failing_gateway_is_retried_then_the_failure_is_recorded() {
    let gateway = Receiver::start(Behaviour::status(503));
    let app = spawn_app_with(with_gateway(&gateway.url, 3)).await;
    let id = app.register(case_with(json!({"name": "赵六", "phone": "13612345678"}), true)).await;
    // Three attempts (the first at once, then after 1 s and 2 s), each the same message.
    let got = gateway.wait_for(20, "three attempts", |r| r.len() >= 3).await;
    let ids: Vec<Value> = got.iter().map(|r| r.json()["OutId"].clone()).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one outbox item: {ids:?}");
    got.iter().for_each(check_signature);
    let failed = wait_for_event(&app, id, "case.notice_failed").await;
    assert_eq!(failed["payload"]["attempts"], 3);
    assert_eq!(failed["payload"]["outbox_id"], ids[0]);
    assert_eq!(failed["payload"]["reason"], "gateway answered 503");
    let items = outbox(&app, id).await;
    assert_eq!(items[0]["state"], "failed");
    assert_eq!(items[0]["attempts"], 3);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(gateway.received().len(), 3, "no attempt after the failure was recorded");
    // A refusal is not retried: the gateway says no for good.
    gateway.answer(Behaviour {
        status: 200,
        body: r#"{"Code":"isv.MOBILE_NUMBER_ILLEGAL"}"#.into(),
        delay: Duration::ZERO,
    });
    let id = app.register(case_with(json!({"name": "钱七", "phone": "13612345679"}), true)).await;
    let failed = wait_for_event(&app, id, "case.notice_failed").await;
    assert_eq!(failed["payload"]["attempts"], 1);
    assert_eq!(failed["payload"]["reason"], "gateway refused: isv.MOBILE_NUMBER_ILLEGAL");
}

#[tokio::test]
async fn the_reply_a_question_and_an_extension_each_owe_a_notice_from_an_editable_template() {
    let sink = SmtpSink::start();
    let app = spawn_app_with(with_smtp(&sink)).await;
    let admin = app.token("admin", None);
    // Admins edit a template; a placeholder it does not know is refused.
    let r = app
        .send(
            reqwest::Method::PUT,
            "/api/v1/notice-templates/question/email",
            Some(&admin),
            Some(&json!({"subject": "询问 {receipt_code}", "body": "请回答：{question}"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .send(
            reqwest::Method::PUT,
            "/api/v1/notice-templates/question/email",
            Some(&admin),
            Some(&json!({"subject": "x", "body": "您好 {name}"})),
            &[],
        )
        .await;
    r.assert_problem(422, "validation");
    let clerk = app.token("clerk", None);
    let id = app.register(case_with(json!({"name": "孙八", "email": "sunba@example.cn"}), true)).await;
    sink.wait_for(1, 20).await;
    let r = app.post(&format!("/api/v1/cases/{id}/questions"), &clerk, json!({"text": "是哪一年的低保？"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mails = sink.wait_for(2, 20).await;
    assert_eq!(mails[1].body.trim(), "请回答：是哪一年的低保？");
    assert!(mails[1].subject.starts_with("询问 HY-"), "{}", mails[1].subject);
    // An extension tells the citizen the answer's due date they are given everywhere (the
    // overall clock, moved with it), never the unit's internal handling deadline.
    let sup = app.token("supervisor", None);
    for (action, body) in [("assign", json!({"unit_id": app.dept_a})), ("sign", json!({}))] {
        let t = if action == "sign" { app.token("handler", Some(app.dept_a)) } else { clerk.clone() };
        let r = app.post(&format!("/api/v1/cases/{id}/{action}"), &t, body).await;
        assert_eq!(r.status, StatusCode::OK, "{action}: {}", r.text);
    }
    let case = app.get(&format!("/api/v1/cases/{id}"), &clerk).await.body;
    let handling_due: chrono::DateTime<chrono::Utc> = case["deadline"]["due_at"].as_str().unwrap().parse().unwrap();
    let new_due = handling_due + chrono::Duration::days(10);
    let r = app
        .post(&format!("/api/v1/cases/{id}/extend"), &sup, json!({"due_at": new_due, "reason": "需要现场勘查"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let overall: chrono::DateTime<chrono::Utc> =
        r.body["overall_deadline"]["due_at"].as_str().unwrap().parse().unwrap();
    let cst = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let mails = sink.wait_for(3, 20).await;
    assert!(mails[2].body.contains(&overall.with_timezone(&cst).format("%Y-%m-%d").to_string()), "{}", mails[2].body);
    assert!(!mails[2].body.contains(&new_due.with_timezone(&cst).format("%Y-%m-%d").to_string()), "{}", mails[2].body);
    // A case not accepted is told so, with the reason and where to turn (信访工作条例 art. 23).
    let other = app.register(case_with(json!({"name": "周九", "email": "zhoujiu@example.cn"}), false)).await;
    let r = app
        .post(
            &format!("/api/v1/cases/{other}/reject"),
            &clerk,
            json!({"reason_code": "legal_channel", "reason": "属于诉讼程序处理的事项", "referred_to": "县人民法院"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mails = sink.wait_for(4, 20).await;
    assert_eq!(mails[3].rcpt_tos, ["zhoujiu@example.cn"]);
    assert!(mails[3].body.contains("属于诉讼程序处理的事项（请向县人民法院反映）"), "{}", mails[3].body);
    // An anonymous case owes no notice.
    let before = sink.mails().len();
    let anon = app.register(case_with(json!({"anonymous": true}), true)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(outbox(&app, anon).await.is_empty());
    assert_eq!(sink.mails().len(), before);
}
