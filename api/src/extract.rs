//! JSON bodies, read by the handler after it checked the caller's permission (so a role that may
//! never send a command gets 403 for it, whatever the body says).

use actix_web::HttpRequest;
use actix_web::web::Bytes;
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, FieldError};

/// The largest optional body read, in bytes (these commands carry at most a few fields).
const MAX_OPTIONAL_BODY: usize = 16 * 1024;

/// The request's query string as `T`, read by the handler after its permission check, so a
/// caller who may not use a route learns 403 whatever its query says (an extractor would answer
/// 400 first). A query that does not parse is 400 `invalid-query`, naming the parameter and the
/// type it expects, never its value.
pub fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    actix_web::web::Query::<T>::from_query(req.query_string())
        .map(actix_web::web::Query::into_inner)
        .map_err(crate::middleware::query_problem)
}

/// A JSON body that may be absent, read after the handler checked the caller's permission: no
/// body, only whitespace, or JSON `null` is `T::default()`; anything else must parse as `T`. The
/// error names the body or the field, never a value sent in it.
///
/// Errors: [`ApiError::PayloadTooLarge`] beyond 16 KiB; [`ApiError::Validation`] on `body` for
/// what is not an object, else on the field that did not parse.
pub fn optional_json_body<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.len() > MAX_OPTIONAL_BODY {
        return Err(ApiError::PayloadTooLarge { limit: MAX_OPTIONAL_BODY });
    }
    let text = body.trim_ascii();
    if text.is_empty() || text == b"null" {
        return Ok(T::default());
    }
    // serde reads a struct from an array too (`[]` would pass as `{}`): only an object is one.
    if !text.starts_with(b"{") {
        return Err(ApiError::Validation(vec![FieldError {
            field: "body".into(),
            message: "must be absent, null or a JSON object of this command's fields".into(),
        }]));
    }
    from_json(text).map_err(body_problem)
}

/// A body that failed to parse: serde's error and the path of the field it failed at
/// (`complainant.phone`, `opinions[2].title`; `.` or empty at the top level).
struct BodyError {
    path: String,
    error: serde_json::Error,
}

/// `serde_json::from_slice`, recording where it failed, except that a number written with a
/// zero fraction (`29.0`) is taken where an integer is expected, as JSON Schema counts it an
/// integer (the spec's `type: integer` says so to every client generator). The retry runs only
/// when the plain parse fails, so the usual body pays nothing; when it fails too, the first
/// error is the answer.
fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    let first = {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        match serde_path_to_error::deserialize(&mut de) {
            Ok(v) => {
                return de.end().map(|()| v).map_err(|error| BodyError { path: String::new(), error });
            }
            Err(e) => {
                // An unknown key is the path's last segment, and it is the caller's text (it may
                // be a value sent as a key): name the object that holds it instead.
                let unknown_key = e.inner().to_string().starts_with("unknown field");
                let segments: Vec<_> = e.path().iter().collect();
                let keep = if unknown_key { segments.len().saturating_sub(1) } else { segments.len() };
                let path = field_path(&segments[..keep]);
                BodyError { path, error: e.into_inner() }
            }
        }
    };
    if !first.error.is_data() {
        return Err(first);
    }
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) else { return Err(first) };
    if !whole_numbers_as_integers(&mut value) {
        return Err(first);
    }
    serde_json::from_value(value).map_err(|_| first)
}

/// `complainant.phone`, `opinions[2].title` from the segments serde walked.
fn field_path(segments: &[&serde_path_to_error::Segment]) -> String {
    use serde_path_to_error::Segment;
    let mut path = String::new();
    for s in segments {
        match s {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Segment::Unknown => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push('?');
            }
        }
    }
    path
}

/// Rewrites every float with a zero fraction (within ±2⁵³, where floats are exact) as an
/// integer; answers whether it rewrote any.
fn whole_numbers_as_integers(v: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() != 0.0 || f.abs() > 9_007_199_254_740_992.0 {
                return false;
            }
            *v = if f < 0.0 { Value::from(f as i64) } else { Value::from(f as u64) };
            true
        }
        Value::Array(items) => items.iter_mut().fold(false, |any, i| whole_numbers_as_integers(i) | any),
        Value::Object(map) => map.values_mut().fold(false, |any, i| whole_numbers_as_integers(i) | any),
        _ => false,
    }
}

/// Reads a JSON body the way `web::JsonConfig` does (a JSON media type, at most
/// [`crate::middleware::MAX_JSON_BYTES`], the same problem for every error), but as a step the
/// handler takes *after* it checked the caller's permission: who may never send a command gets
/// 403 for it, whatever the body says.
pub fn json_body<T: DeserializeOwned>(req: &HttpRequest, body: &Bytes) -> Result<T, ApiError> {
    use actix_web::error::JsonPayloadError;
    let is_json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")));
    if !is_json {
        return Err(crate::middleware::json_problem(&JsonPayloadError::ContentType));
    }
    if body.len() > crate::middleware::MAX_JSON_BYTES {
        return Err(crate::middleware::json_problem(&JsonPayloadError::Overflow {
            limit: crate::middleware::MAX_JSON_BYTES,
        }));
    }
    // serde reads a struct from an array too (positional fields): the spec says an object.
    if body.trim_ascii().first() == Some(&b'[') {
        return Err(ApiError::Validation(vec![FieldError {
            field: "body".into(),
            message: "must be a JSON object".into(),
        }]));
    }
    from_json(body).map_err(body_problem)
}

/// The problem for a body that did not parse: the field it failed at is named (its path, never a
/// value) where serde's message did not name it.
fn body_problem(BodyError { path, error }: BodyError) -> ApiError {
    let mut problem = crate::middleware::json_problem(&actix_web::error::JsonPayloadError::Deserialize(error));
    if let ApiError::Validation(fields) = &mut problem
        && !path.is_empty()
        && path != "."
    {
        for f in fields.iter_mut().filter(|f| f.field == "body") {
            f.field.clone_from(&path);
        }
    }
    problem
}
