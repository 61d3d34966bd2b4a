//! The Open311 GeoReport v2 facade (issue 12): every answer checked against the spec's field
//! lists (written out here from http://wiki.open311.org/GeoReport_v2, not from the code), in
//! JSON and XML; errors in the spec's format; a request posted there is a case in the ledger,
//! and its updates show in `requests.json`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tests::app::{Reply, TestApp, spawn_app};

/// The spec's fields of a service (GET services).
const SERVICE_FIELDS: [&str; 7] =
    ["service_code", "service_name", "description", "metadata", "type", "keywords", "group"];
/// The spec's fields of a service request (GET requests, GET requests/{id}).
const REQUEST_FIELDS: [&str; 17] = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
];
/// The spec's fields of an attribute (GET services/{code}).
const ATTRIBUTE_FIELDS: [&str; 8] =
    ["variable", "code", "datatype", "required", "datatype_description", "order", "description", "values"];
/// The spec's fields of the answer to POST requests (with a service_request_id, no token).
const CREATED_FIELDS: [&str; 3] = ["service_request_id", "service_notice", "account_id"];

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

fn sorted(fields: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = fields.iter().map(|s| (*s).to_owned()).collect();
    k.sort();
    k
}

/// An XML document as (element name, children) trees, text dropped.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    name: String,
    text: String,
    children: Vec<Node>,
}

fn parse_xml(s: &str) -> Node {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(s);
    let mut stack: Vec<Node> = vec![Node { name: "#document".into(), text: String::new(), children: vec![] }];
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => stack.push(Node {
                name: AsRef::<str>::as_ref(&e.name()).to_owned(),
                text: String::new(),
                children: vec![],
            }),
            Event::Empty(e) => {
                let n =
                    Node { name: AsRef::<str>::as_ref(&e.name()).to_owned(), text: String::new(), children: vec![] };
                stack.last_mut().unwrap().children.push(n);
            }
            Event::Text(t) => stack.last_mut().unwrap().text.push_str(&t.into_inner()),
            Event::GeneralRef(r) => {
                // An entity (`&amp;` …) inside a text: the tests' texts hold none but these.
                let name = r.into_inner();
                let c = match name.as_ref() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    other => panic!("an unexpected entity &{other};"),
                };
                stack.last_mut().unwrap().text.push_str(c);
            }
            Event::End(_) => {
                let n = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(n);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut doc = stack.pop().unwrap();
    assert_eq!(doc.children.len(), 1, "one root element");
    doc.children.remove(0)
}

impl Node {
    fn names(&self) -> Vec<String> {
        let mut k: Vec<String> = self.children.iter().map(|c| c.name.clone()).collect();
        k.sort();
        k
    }
    fn child(&self, name: &str) -> &Node {
        self.children.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no <{name}> in <{}>", self.name))
    }
}

async fn list(app: &TestApp, key: &str, query: &str) -> Reply {
    get(app, &format!("/open311/v2/requests.json?api_key={key}{query}")).await
}

async fn get(app: &TestApp, path: &str) -> Reply {
    app.send(Method::GET, path, None, None, &[]).await
}

async fn post_form(app: &TestApp, path: &str, form: &[(&str, &str)]) -> Reply {
    let resp = app
        .client
        .post(format!("{}{path}", app.address))
        .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
        .body(serde_urlencoded_form(form))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, headers, body, text }
}

fn serde_urlencoded_form(form: &[(&str, &str)]) -> String {
    form.iter().map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v))).collect::<Vec<_>>().join("&")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A category with one required and one list attribute, and an api_key of channel `web`.
async fn setup(app: &TestApp) -> (String, String) {
    let admin = app.token("admin", None);
    let r = app
        .post(
            "/api/v1/categories",
            &admin,
            json!({"code": "roads.lights", "name": "路灯损坏", "kind": "complaint", "default_unit_id": app.dept_a}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let category = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .send(
            Method::PUT,
            &format!("/api/v1/categories/{category}/attributes"),
            Some(&admin),
            Some(&json!({"attributes": [
                {"variable": true, "code": "pole", "datatype": "string", "required": true, "datatype_description": "灯杆编号",
                 "order": 1, "description": "灯杆编号", "values": []},
                {"variable": true, "code": "fault", "datatype": "singlevaluelist", "required": false,
                 "datatype_description": null, "order": 2, "description": "故障", "values": [{"key": "dark", "name": "不亮"}, {"key": "flicker", "name": "闪烁"}]}
            ]})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.post("/api/v1/open311-keys", &admin, json!({"name": "市民平台", "channel": "web"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    (category, r.body["api_key"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn discovery_services_and_definitions_carry_the_spec_fields_in_json_and_xml() {
    let app = spawn_app().await;
    setup(&app).await;
    let r = get(&app, "/open311/v2/discovery.json").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(keys(&r.body), sorted(&["changeset", "contact", "key_service", "endpoints"]));
    assert_eq!(keys(&r.body["endpoints"][0]), sorted(&["specification", "url", "changeset", "type", "formats"]));
    assert_eq!(r.body["endpoints"][0]["specification"], "http://wiki.open311.org/GeoReport_v2");
    assert_eq!(r.body["endpoints"][0]["formats"], json!(["application/json", "text/xml"]));
    let x = get(&app, "/open311/v2/discovery.xml").await;
    assert_eq!(x.content_type(), "text/xml; charset=utf-8");
    assert!(x.text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    let d = parse_xml(&x.text);
    assert_eq!(d.name, "discovery");
    assert_eq!(d.child("endpoints").child("endpoint").child("formats").children.len(), 2);

    let r = get(&app, "/open311/v2/services.json").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.content_type(), "application/json; charset=utf-8");
    let services = r.body.as_array().unwrap();
    let lights = services.iter().find(|s| s["service_code"] == "roads.lights").expect("the category is a service");
    assert_eq!(keys(lights), sorted(&SERVICE_FIELDS));
    assert_eq!(lights["metadata"], true);
    assert_eq!(lights["type"], "realtime");
    let x = parse_xml(&get(&app, "/open311/v2/services.xml").await.text);
    assert_eq!(x.name, "services");
    assert!(x.children.iter().all(|s| s.name == "service" && s.names() == sorted(&SERVICE_FIELDS)));

    let r = get(&app, "/open311/v2/services/roads.lights.json").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(keys(&r.body), sorted(&["service_code", "attributes"]));
    for a in r.body["attributes"].as_array().unwrap() {
        assert_eq!(keys(a), sorted(&ATTRIBUTE_FIELDS));
    }
    assert_eq!(
        r.body["attributes"][1]["values"],
        json!([{"key": "dark", "name": "不亮"}, {"key": "flicker", "name": "闪烁"}])
    );
    let x = parse_xml(&get(&app, "/open311/v2/services/roads.lights.xml").await.text);
    assert_eq!(x.name, "service_definition");
    let attrs = x.child("attributes");
    assert!(attrs.children.iter().all(|a| a.name == "attribute" && a.names() == sorted(&ATTRIBUTE_FIELDS)));
    assert_eq!(attrs.children[1].child("values").children.len(), 2);
    assert_eq!(attrs.children[1].child("values").children[0].names(), sorted(&["key", "name"]));
}

fn assert_errors_json(r: &Reply, status: u16) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    let list = r.body.as_array().unwrap_or_else(|| panic!("an array of errors: {}", r.text));
    assert!(!list.is_empty());
    for e in list {
        assert_eq!(keys(e), sorted(&["code", "description"]), "{}", r.text);
    }
}

#[tokio::test]
async fn errors_come_in_the_spec_format() {
    let app = spawn_app().await;
    let (_, key) = setup(&app).await;
    // No key, a wrong key: 403.
    assert_errors_json(&get(&app, "/open311/v2/requests.json").await, 403);
    assert_errors_json(&get(&app, "/open311/v2/requests.json?api_key=nope").await, 403);
    let r = post_form(&app, "/open311/v2/requests.json", &[("service_code", "roads.lights")]).await;
    assert_errors_json(&r, 403);
    // An unknown service: 404; no location: 400; a required attribute missing: 400.
    assert_errors_json(&get(&app, "/open311/v2/services/none.json").await, 404);
    let r = post_form(&app, "/open311/v2/requests.json", &[("api_key", &key), ("service_code", "none")]).await;
    assert_errors_json(&r, 404);
    let r = post_form(
        &app,
        "/open311/v2/requests.json",
        &[("api_key", &key), ("service_code", "roads.lights"), ("attribute[pole]", "A-1")],
    )
    .await;
    assert_errors_json(&r, 400);
    let r = post_form(
        &app,
        "/open311/v2/requests.json",
        &[("api_key", &key), ("service_code", "roads.lights"), ("address_string", "村口")],
    )
    .await;
    assert_errors_json(&r, 400);
    assert!(r.text.contains("attribute[pole] is required"), "{}", r.text);
    // A window longer than 90 days: 400.
    let r = get(
        &app,
        &format!(
            "/open311/v2/requests.json?api_key={key}&start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z"
        ),
    )
    .await;
    assert_errors_json(&r, 400);
    // The same errors in XML.
    let x = get(&app, "/open311/v2/requests.xml").await;
    assert_eq!(x.status, StatusCode::FORBIDDEN);
    let e = parse_xml(&x.text);
    assert_eq!(e.name, "errors");
    assert_eq!(e.children[0].name, "error");
    assert_eq!(e.children[0].names(), sorted(&["code", "description"]));
    assert_eq!(e.children[0].child("code").text, "403");
    // An unknown request: 404.
    assert_errors_json(&get(&app, &format!("/open311/v2/requests/HY-20260101-00000000.json?api_key={key}")).await, 404);
}

#[tokio::test]
async fn a_request_posted_there_is_a_case_in_the_ledger_and_its_updates_show_in_requests() {
    let app = spawn_app().await;
    let (_, key) = setup(&app).await;
    let r = post_form(
        &app,
        "/open311/v2/requests.json",
        &[
            ("api_key", &key),
            ("service_code", "roads.lights"),
            ("lat", "30.123456"),
            ("long", "120.654321"),
            ("address_string", "东岭村村口"),
            ("description", "村口两根路灯不亮。"),
            ("attribute[pole]", "A-17"),
            ("attribute[fault]", "dark"),
            ("first_name", "五"),
            ("last_name", "王"),
            ("phone", "13912345678"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(keys(&r.body[0]), sorted(&CREATED_FIELDS));
    let code = r.body[0]["service_request_id"].as_str().unwrap().to_owned();

    // In the ledger, like any case: channel web, its category, its description with the answers.
    let sup = app.token("supervisor", None);
    let l = app.get(&format!("/api/v1/ledger?q={code}"), &sup).await;
    let entry = &l.body["items"][0];
    assert_eq!(entry["receipt_code"], code.as_str(), "{}", l.text);
    assert_eq!(entry["channel"], "web");
    let id = entry["case_id"].as_str().unwrap().to_owned();
    let case = app.get(&format!("/api/v1/cases/{id}"), &sup).await.body;
    assert!(case["description"].as_str().unwrap().contains("灯杆编号：A-17"), "{case}");
    assert!(case["description"].as_str().unwrap().contains("故障：不亮"), "{case}");

    let r = list(&app, &key, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let req = &r.body[0];
    assert_eq!(keys(req), sorted(&REQUEST_FIELDS));
    assert_eq!(req["service_request_id"], code.as_str());
    assert_eq!(req["status"], "open");
    assert_eq!(req["service_code"], "roads.lights");
    assert_eq!(req["address"], "东岭村村口");
    assert_eq!(req["lat"], 30.123456);
    assert_eq!(req["long"], 120.654321);
    assert!(req["requested_datetime"].as_str().unwrap().ends_with("+08:00"), "{req}");
    assert!(!r.text.contains("13912345678"), "no personal data: {}", r.text);

    // Handled and answered: closed, with the reply in the status notes.
    let clerk = app.token("clerk", None);
    let handler = app.token("handler", Some(app.dept_a));
    for (token, action, body) in [
        (&clerk, "accept", json!({})),
        (&clerk, "assign", json!({"unit_id": app.dept_a})),
        (&handler, "handle", json!({"outcome": "resolved", "result": "已修复"})),
        (&handler, "feedback", json!({"method": "sms", "content": "两根路灯均已修复。"})),
        (&clerk, "satisfaction", json!({"rating": "satisfied", "method": "phone", "solved": true})),
        (&sup, "close", json!({})),
    ] {
        let r = app.post(&format!("/api/v1/cases/{id}/{action}"), token, body).await;
        assert_eq!(r.status, StatusCode::OK, "{action}: {}", r.text);
    }
    let r = list(&app, &key, &format!("&service_request_id={}", code.to_ascii_lowercase())).await;
    let req = &r.body[0];
    assert_eq!(req["status"], "closed", "{}", r.text);
    assert_eq!(req["status_notes"], "已办结：两根路灯均已修复。");
    assert_eq!(req["agency_responsible"], "卫生院");
    assert!(req["expected_datetime"].is_null());
    assert!(req["updated_datetime"].as_str().unwrap() >= req["requested_datetime"].as_str().unwrap());
    // Filters: closed finds it, open does not; another service code does not.
    assert_eq!(list(&app, &key, "&status=closed").await.body.as_array().unwrap().len(), 1);
    assert_eq!(list(&app, &key, "&status=open").await.body.as_array().unwrap().len(), 0);
    assert_eq!(list(&app, &key, "&service_code=other").await.body.as_array().unwrap().len(), 0);
    // One request, JSON and XML.
    let one = get(&app, &format!("/open311/v2/requests/{code}.json?api_key={key}")).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    assert_eq!(keys(&one.body[0]), sorted(&REQUEST_FIELDS));
    let x = parse_xml(&get(&app, &format!("/open311/v2/requests/{code}.xml?api_key={key}")).await.text);
    assert_eq!(x.name, "service_requests");
    assert_eq!(x.children[0].name, "request");
    assert_eq!(x.children[0].names(), sorted(&REQUEST_FIELDS));
    assert_eq!(x.children[0].child("status").text, "closed");
    // A key of another channel does not see it.
    let r =
        app.post("/api/v1/open311-keys", &app.token("admin", None), json!({"name": "热线", "channel": "phone"})).await;
    let other = r.body["api_key"].as_str().unwrap();
    let r = get(&app, &format!("/open311/v2/requests.json?api_key={other}")).await;
    assert_eq!(r.body, json!([]), "{}", r.text);
    // Nor does another key of the same channel, and this key does not see a case a citizen
    // submitted online (channel web too): a key reads what it posted, nothing else.
    let r = app
        .post("/api/v1/open311-keys", &app.token("admin", None), json!({"name": "另一平台", "channel": "web"}))
        .await;
    let second = r.body["api_key"].as_str().unwrap().to_owned();
    assert_eq!(get(&app, &format!("/open311/v2/requests.json?api_key={second}")).await.body, json!([]));
    assert_errors_json(&get(&app, &format!("/open311/v2/requests/{code}.json?api_key={second}")).await, 404);
    let r = app
        .send(
            Method::POST,
            "/api/v1/public/cases",
            None,
            Some(&json!({"kind": "report", "title": "检举", "description": "匿名检举内容", "complainant": {"anonymous": true}})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let listed = list(&app, &key, "").await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "{}", listed.text);
    assert!(!listed.text.contains("匿名检举内容"));
    // A revoked key is refused.
    let keys_list = app.get("/api/v1/open311-keys", &app.token("admin", None)).await;
    let key_id = keys_list.body.as_array().unwrap().iter().find(|k| k["name"] == "市民平台").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .send(Method::DELETE, &format!("/api/v1/open311-keys/{key_id}"), Some(&app.token("admin", None)), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_errors_json(&list(&app, &key, "").await, 403);
}
