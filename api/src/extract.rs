//! Request extractors of our own, and the JSON body read after authorisation.

use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, dev::Payload};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, FieldError};

/// The largest optional body read, in bytes (these commands carry at most a few fields).
const MAX_OPTIONAL_BODY: usize = 16 * 1024;

/// A JSON body that may be absent: no body (or only whitespace) is `T::default()`. A body that
/// is there must parse; the error names the body, never a value sent in it.
#[derive(Debug, Clone, Default)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|_| ApiError::PayloadTooLarge { limit: MAX_OPTIONAL_BODY })?;
            if bytes.len() > MAX_OPTIONAL_BODY {
                return Err(ApiError::PayloadTooLarge { limit: MAX_OPTIONAL_BODY });
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Self(T::default()));
            }
            serde_json::from_slice(&bytes).map(Self).map_err(|_| {
                ApiError::Validation(vec![FieldError {
                    field: "body".into(),
                    message: "must be absent or a JSON object of this command's fields".into(),
                }])
            })
        })
    }
}

/// Reads a JSON body the way `web::JsonConfig` does (a JSON media type, at most
/// [`crate::middleware::MAX_JSON_BYTES`], the same problem for every error), but as a step the
/// handler takes *after* it checked the caller's permission: who may never send a command gets
/// 403 for it, whatever the body says.
pub fn json_body<T: DeserializeOwned>(req: &HttpRequest, body: &Bytes) -> Result<T, actix_web::Error> {
    use actix_web::error::JsonPayloadError;
    let is_json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")));
    if !is_json {
        return Err(crate::middleware::json_error(JsonPayloadError::ContentType, req));
    }
    if body.len() > crate::middleware::MAX_JSON_BYTES {
        return Err(crate::middleware::json_error(
            JsonPayloadError::Overflow { limit: crate::middleware::MAX_JSON_BYTES },
            req,
        ));
    }
    serde_json::from_slice(body).map_err(|e| crate::middleware::json_error(JsonPayloadError::Deserialize(e), req))
}
