//! What HTTP promises beyond each handler (RFC 9110), for every route at once:
//!
//! - `HEAD` is served wherever `GET` is, with the same headers and no body;
//! - a path that exists under another method answers 405 with `Allow`; `OPTIONS` answers 204
//!   with `Allow` (the route table is the OpenAPI spec, so the two never disagree);
//! - every successful `GET` of a JSON body carries an `ETag` (a case's is its version; others a
//!   hash of the body), and `If-None-Match` answers 304;
//! - CORS for the configured origins only (actix-cors), preflights answered 204, the headers a
//!   browser client needs exposed;
//! - any error response that is not yet `application/problem+json` (an extractor's, the
//!   framework's) becomes one.

use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage as _, HttpRequest, HttpResponse, ResponseError as _, web};
use sha2::{Digest, Sha256};

use crate::problem::{ApiError, PROBLEM_JSON};

/// The largest body hashed for an `ETag` (larger ones, exports, stream through without one).
const MAX_ETAG_BODY: usize = 4 * 1024 * 1024;

/// Every route and its methods, from the OpenAPI spec.
#[derive(Debug, Clone, Default)]
pub struct RouteTable(Arc<Vec<(Vec<String>, Vec<Method>)>>);

impl RouteTable {
    /// The table of a spec (plus the documentation routes, which the spec does not list).
    pub fn from_spec(spec: &utoipa::openapi::OpenApi) -> Self {
        let mut routes = Vec::new();
        for (path, item) in spec.paths.paths.iter() {
            let mut methods = Vec::new();
            for (m, present) in [
                (Method::GET, item.get.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::PATCH, item.patch.is_some()),
                (Method::DELETE, item.delete.is_some()),
            ] {
                if present {
                    methods.push(m);
                }
            }
            routes.push((segments(path), methods));
        }
        for path in ["/openapi.json", "/docs", "/docs/"] {
            routes.push((segments(path), vec![Method::GET]));
        }
        Self(Arc::new(routes))
    }

    /// The methods a path answers to (`HEAD` with `GET`, and `OPTIONS`), or none when no route
    /// has the path.
    pub fn allowed(&self, path: &str) -> Vec<Method> {
        let want = segments(path);
        let mut out: Vec<Method> = Vec::new();
        for (template, methods) in self.0.iter() {
            let fits = template.len() == want.len()
                && template.iter().zip(&want).all(|(t, w)| (t.starts_with('{') && !w.is_empty()) || t == w);
            if fits {
                for m in methods {
                    if !out.contains(m) {
                        out.push(m.clone());
                    }
                }
            }
        }
        if out.contains(&Method::GET) {
            out.push(Method::HEAD);
        }
        if !out.is_empty() {
            out.push(Method::OPTIONS);
        }
        out
    }
}

fn segments(path: &str) -> Vec<String> {
    path.trim_end_matches('/').split('/').map(str::to_owned).collect()
}

fn allow_header(methods: &[Method]) -> String {
    methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ")
}

/// The answer for a request no route took: 405 with `Allow` when the path exists under another
/// method, 204 with `Allow` for `OPTIONS`, `/docs` redirected to `/docs/`, else 404.
pub async fn fallback(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if req.path() == "/docs" {
        return Ok(HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "/docs/")).finish());
    }
    let table = req.app_data::<web::Data<RouteTable>>().map(|t| t.get_ref().clone()).unwrap_or_default();
    let allowed = table.allowed(req.path());
    if allowed.is_empty() {
        return Err(ApiError::NotFound("route"));
    }
    if req.method() == Method::OPTIONS {
        return Ok(HttpResponse::NoContent().insert_header((header::ALLOW, allow_header(&allowed))).finish());
    }
    Err(ApiError::MethodNotAllowed(allow_header(&allowed)))
}

/// Marks a `HEAD` request that is routed as a `GET` ([`is_head`]).
#[derive(Debug, Clone, Copy)]
struct HeadRequest;

/// Whether the request came as `HEAD` (routed as `GET`): a handler whose body is work (an
/// export, an event stream) answers the headers alone instead of doing it.
pub fn is_head(req: &actix_web::HttpRequest) -> bool {
    req.extensions().contains::<HeadRequest>()
}

/// `HEAD` as `GET` without the body (and with the body's `Content-Length` when it has a known
/// size); `If-None-Match` against the `ETag`; an `ETag` on every successful JSON `GET`.
pub async fn conditional_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let head = req.method() == Method::HEAD;
    if head {
        req.head_mut().method = Method::GET;
        req.extensions_mut().insert(HeadRequest);
    }
    let get = req.method() == Method::GET;
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let res = next.call(req).await?.map_into_boxed_body();
    if !get || !res.status().is_success() {
        return Ok(if head { without_body(res) } else { res });
    }
    let is_json =
        res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let small =
        matches!(res.response().body().size(), actix_web::body::BodySize::Sized(n) if n <= MAX_ETAG_BODY as u64);
    // A handler's own ETag is the case's version, its If-Match token: the view also carries the
    // state of its deadlines as of now, which changes with no new version, so that tag does not
    // validate the representation and answers no 304. Only a tag computed from the body does.
    let handler_tag = res.headers().contains_key(header::ETAG);
    let res = if handler_tag || !is_json || !small { res } else { with_body_etag(res).await };
    let matches = match (&if_none_match, res.headers().get(header::ETAG).and_then(|v| v.to_str().ok())) {
        (Some(inm), Some(etag)) if !handler_tag => etag_matches(inm, etag),
        _ => false,
    };
    if matches {
        let (req, res) = res.into_parts();
        let mut not_modified = HttpResponse::NotModified();
        for name in [header::ETAG, header::CACHE_CONTROL, header::VARY] {
            if let Some(v) = res.headers().get(&name) {
                not_modified.insert_header((name.clone(), v.clone()));
            }
        }
        return Ok(ServiceResponse::new(req, not_modified.finish()));
    }
    Ok(if head { without_body(res) } else { res })
}

/// Whether an `If-None-Match` value (`*` or a list, weak or strong) matches an `ETag` (weak
/// comparison, as RFC 9110 §13.1.2 asks).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let etag = bare(etag);
    if_none_match.trim() == "*" || if_none_match.split(',').any(|t| bare(t) == etag)
}

async fn with_body_etag(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let (req, res) = res.into_parts();
    let (head, body) = res.into_parts();
    match actix_web::body::to_bytes_limited(body, MAX_ETAG_BODY).await {
        Ok(Ok(bytes)) => {
            let digest = Sha256::digest(&bytes);
            let mut res = head.set_body(BoxBody::new(bytes));
            if let Ok(v) = HeaderValue::from_str(&format!("\"h{}\"", hex::encode(&digest[..12]))) {
                res.headers_mut().insert(header::ETAG, v);
            }
            ServiceResponse::new(req, res)
        }
        // An in-memory body of a known size below the limit always reads; should it not, the
        // client gets a problem, never a truncated answer.
        _ => ServiceResponse::new(req, ApiError::internal(std::io::Error::other("body unreadable")).error_response()),
    }
}

/// The response to a `HEAD`. A body of known size is kept: the HTTP/1 codec knows the request
/// was `HEAD` (it read the method before any middleware), so it sends that size as
/// `Content-Length` and no body byte. A streamed body is dropped unread and the head goes
/// without `Content-Length` (the length is not known without doing the work).
fn without_body(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    if matches!(res.response().body().size(), actix_web::body::BodySize::Sized(_)) {
        return res;
    }
    let (req, res) = res.into_parts();
    let (head, _) = res.into_parts();
    ServiceResponse::new(req, head.set_body(BoxBody::new(actix_web::body::None::new())))
}

/// Any error response that is not a problem document yet (the framework's own) becomes one,
/// with a code named after its status; preflights answered by CORS become 204.
pub async fn problems_everywhere(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    if preflight && status == StatusCode::OK {
        let (req, res) = res.into_parts();
        let (mut head, _) = res.into_parts();
        *head.status_mut() = StatusCode::NO_CONTENT;
        return Ok(ServiceResponse::new(req, head.set_body(BoxBody::new(()))));
    }
    let is_problem = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    // Open311 answers errors in its spec's own format (a list of `{code, description}`).
    let open311 = res.request().path().starts_with("/open311/") && res.headers().contains_key(header::CONTENT_TYPE);
    if !(status.is_client_error() || status.is_server_error()) || is_problem || open311 {
        return Ok(res);
    }
    let (req, res) = res.into_parts();
    let api = ApiError::from_status(status);
    let mut problem = api.error_response();
    // Keep what the framework said (Allow, CORS, …), not its body's type and length.
    for (name, v) in res.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), v.clone());
        }
    }
    Ok(ServiceResponse::new(req, problem))
}

/// Refuses an origin that is not `scheme://host[:port]` (a typo would otherwise silently allow
/// nothing, or fail at the first request).
pub fn check_origins(origins: &[String]) -> Result<(), String> {
    for o in origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
        let rest = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://"));
        let ok = rest.is_some_and(|r| {
            !r.is_empty() && !r.contains('/') && r.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
        if !ok {
            return Err(format!("HUIYIN_CORS_ORIGINS: {o:?} is not an origin like https://ledger.example.gov.cn"));
        }
    }
    Ok(())
}

/// The CORS policy: the configured origins only (none by default: no cross-origin access), the
/// methods of the API, the request headers a client sends, and the response headers it reads.
pub fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut c = actix_cors::Cors::default()
        .allowed_methods(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static("x-receipt-secret"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::LINK,
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(600)
        // Requests from other origins are served (curl, server-to-server); the browser keeps
        // their answers from pages on origins not listed, which get no CORS headers.
        .block_on_origin_mismatch(false);
    for o in origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
        c = c.allowed_origin(o);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        assert!(etag_matches("\"3\"", "\"3\""));
        assert!(etag_matches("W/\"3\"", "\"3\""));
        assert!(etag_matches("\"1\", \"3\"", "\"3\""));
        assert!(etag_matches("*", "\"3\""));
        assert!(!etag_matches("\"4\"", "\"3\""));
    }

    #[test]
    fn the_route_table_knows_methods_by_template() {
        let t = RouteTable(Arc::new(vec![
            (segments("/api/v1/cases/{id}"), vec![Method::GET]),
            (segments("/api/v1/cases/{id}/assign"), vec![Method::POST]),
        ]));
        assert_eq!(t.allowed("/api/v1/cases/abc"), vec![Method::GET, Method::HEAD, Method::OPTIONS]);
        assert_eq!(t.allowed("/api/v1/cases/abc/assign"), vec![Method::POST, Method::OPTIONS]);
        assert!(t.allowed("/api/v1/nothing").is_empty());
    }
}
