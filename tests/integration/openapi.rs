//! The contract: the committed spec is what the code produces, and every documented operation is
//! routed (the spec and the router come from the same registrations).

use reqwest::Method;
use tests::app::spawn_app;

#[test]
fn the_committed_spec_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = api::openapi::spec_json();
    assert!(committed == generated, "openapi/openapi.json is stale: run `make openapi` and commit it");
}

#[test]
fn every_operation_is_documented_with_a_summary_errors_and_a_body() {
    let spec: serde_json::Value = serde_json::from_str(&api::openapi::spec_json()).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{} paths", paths.len());
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{at}: summary");
            assert!(op["description"].as_str().is_some_and(|s| !s.is_empty()), "{at}: description");
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.keys().any(|k| k.starts_with('2')), "{at}: a success response");
            let public = path.starts_with("/api/v1/public");
            if public {
                for code in ["400", "429", "500", "503"] {
                    assert!(responses[code]["content"]["application/problem+json"].is_object(), "{at}: {code}");
                }
                assert_eq!(op["security"], serde_json::json!([{}]), "{at}: no token");
            } else if path.starts_with("/open311/") {
                for code in ["400", "403", "404", "429"] {
                    assert!(responses.contains_key(code), "{at}: {code} in the spec's error format");
                }
            } else if path.starts_with("/api/") {
                for code in ["400", "401", "403", "500", "503"] {
                    assert!(responses.contains_key(code), "{at}: {code}");
                    assert!(
                        responses[code]["content"]["application/problem+json"].is_object(),
                        "{at}: {code} is problem+json"
                    );
                }
                assert!(op["security"].is_array(), "{at}: security");
            }
            if method == "post" && path.starts_with("/api/v1/cases/{id}/") {
                for code in ["404", "409", "412", "422"] {
                    assert!(responses.contains_key(code), "{at}: {code}");
                }
            }
        }
    }
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
    assert!(spec["components"]["schemas"]["Problem"].is_object());
    let title = &spec["components"]["schemas"]["RegisterCaseRequest"]["properties"]["title"];
    assert_eq!(title["maxLength"], 200);
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_nothing_else_is() {
    let app = spawn_app().await;
    let spec: serde_json::Value = serde_json::from_str(&api::openapi::spec_json()).unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", &id).replace("{year}", "2026");
        for method in item.as_object().unwrap().keys() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (m != Method::GET).then(|| serde_json::json!({}));
            let r = app.send(m, &concrete, None, body.as_ref(), &[]).await;
            let route_missing = r.status.as_u16() == 404 && r.body["detail"] == "route not found";
            assert!(!route_missing, "{method} {path} is documented but not routed");
            if path.starts_with("/api/v1/public") {
                assert!(
                    r.status.as_u16() < 500 && r.status.as_u16() != 401,
                    "{method} {path} takes no token: {}",
                    r.text
                );
            } else if path.starts_with("/api/") {
                assert_eq!(r.status.as_u16(), 401, "{method} {path} needs a token");
            }
        }
    }
    for (m, p) in [(Method::POST, format!("/api/v1/cases/{id}/frobnicate")), (Method::GET, "/api/v2/cases".into())] {
        let r = app.send(m.clone(), &p, None, None, &[]).await;
        assert_eq!(r.status.as_u16(), 404, "{m} {p} is not documented, so it must not be routed");
    }
    // A documented path under a method it does not document: 405, and `Allow` lists the spec's.
    let r = app.send(Method::DELETE, &format!("/api/v1/cases/{id}"), None, None, &[]).await;
    assert_eq!((r.status.as_u16(), r.header("allow")), (405, Some("GET, HEAD, OPTIONS")), "{}", r.text);
}

#[tokio::test]
async fn the_docs_page_works_without_the_internet() {
    let app = spawn_app().await;
    let page = app.send(Method::GET, "/docs/", None, None, &[]).await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text);
    assert!(page.text.contains("swagger"), "{}", page.text);
    for needle in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(!page.text.contains(needle), "the docs page loads {needle}…: {}", page.text);
    }
    let init = app.send(Method::GET, "/docs/swagger-initializer.js", None, None, &[]).await;
    assert_eq!(init.status.as_u16(), 200);
    assert!(init.text.contains("/openapi.json"));
    let js = app.send(Method::GET, "/docs/swagger-ui-bundle.js", None, None, &[]).await;
    assert_eq!(js.status.as_u16(), 200);
    let spec = app.send(Method::GET, "/openapi.json", None, None, &[]).await;
    assert_eq!(spec.body["info"]["title"], "Huiyin (回音) API");
}

/// Every `$ref` in `doc`, with the JSON pointer of the place that holds it.
fn refs(doc: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(v: &serde_json::Value, at: &str, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if k == "$ref" {
                        out.push((at.to_owned(), v.as_str().unwrap_or_default().to_owned()));
                    } else {
                        walk(v, &format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
                    }
                }
            }
            serde_json::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(v, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, "", &mut out);
    out
}

/// The `$ref`s of `doc` that name nothing in it (only local references, `#/…`, are allowed).
fn dangling(doc: &serde_json::Value) -> Vec<String> {
    refs(doc)
        .into_iter()
        .filter(|(_, r)| r.strip_prefix('#').is_none_or(|p| doc.pointer(p).is_none()))
        .map(|(at, r)| format!("{at}: {r}"))
        .collect()
}

#[tokio::test]
async fn every_ref_of_the_served_spec_resolves() {
    let app = spawn_app().await;
    let served = app.send(Method::GET, "/openapi.json", None, None, &[]).await;
    assert_eq!(served.status.as_u16(), 200);
    let all = refs(&served.body);
    assert!(all.len() > 50, "the walk found only {} references", all.len());
    let bad = dangling(&served.body);
    assert!(
        bad.is_empty(),
        "dangling $refs in the served spec (register the type as a component):\n{}",
        bad.join("\n")
    );
    // The committed copy too (the drift test above also keeps it equal to the code's).
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    let committed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let bad = dangling(&committed);
    assert!(bad.is_empty(), "dangling $refs in openapi/openapi.json:\n{}", bad.join("\n"));
}

#[test]
fn the_ref_walk_sees_a_dangling_reference() {
    let doc = serde_json::json!({
        "components": {"schemas": {"A": {"type": "string"}}},
        "paths": {"/x": {"get": {"parameters": [
            {"schema": {"$ref": "#/components/schemas/A"}},
            {"schema": {"$ref": "#/components/schemas/Missing"}},
            {"schema": {"$ref": "other.json#/A"}}
        ]}}}
    });
    assert_eq!(refs(&doc).len(), 3);
    assert_eq!(
        dangling(&doc),
        vec![
            "/paths/~1x/get/parameters/1/schema: #/components/schemas/Missing".to_owned(),
            "/paths/~1x/get/parameters/2/schema: other.json#/A".to_owned()
        ]
    );
}

/// A route's own description of an error code is kept, not overwritten by the generic one: the
/// six operations that document `campaign-finished` (a meeting, a visit, a card batch, a
/// questionnaire, a response and a campaign's phase; counted in `api/src/routes/`) say so in the
/// spec, and an operation that documents no 409 of its own gets the generic one. Before the fix
/// every 409 carried the generic text.
#[test]
fn a_route_s_own_error_description_is_kept() {
    let spec: serde_json::Value = serde_json::from_str(&api::openapi::spec_json()).unwrap();
    let mut finished = 0;
    for item in spec["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if op["responses"]["409"]["description"].as_str().is_some_and(|d| d.contains("`campaign-finished`")) {
                finished += 1;
            }
        }
    }
    assert_eq!(finished, 6);
    let assign = &spec["paths"]["/api/v1/cases/{id}/assign"]["post"]["responses"]["409"]["description"];
    assert!(assign.as_str().is_some_and(|d| d.starts_with("Refused by a rule of the case lifecycle")), "{assign}");
}
