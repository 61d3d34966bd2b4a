//! Every error the API returns, as RFC 9457 `application/problem+json`, mapped in one place.
//!
//! Each problem has a stable `type` (`urn:huiyin:problem:<code>`), a `title`, the HTTP `status`,
//! a `detail`, field errors where relevant, and the request id. 500s are logged with their
//! cause chain and answered opaquely.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use domain::DomainError;
use infra::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of problems.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as a JSON pointer-like path (`title`, `complainant.phone`).
    #[schema(example = "title")]
    pub field: String,
    /// What is wrong.
    #[schema(example = "must be at most 200 characters")]
    pub message: String,
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A stable URI naming the kind of problem; the last segment is the machine code.
    #[serde(rename = "type")]
    #[schema(example = "urn:huiyin:problem:closed-before-feedback")]
    pub type_: String,
    /// A short summary of the kind of problem.
    #[schema(example = "Conflict with the case's state")]
    pub title: String,
    /// The HTTP status.
    #[schema(example = 409)]
    pub status: u16,
    /// What went wrong in this occurrence.
    #[schema(
        example = "a case cannot be closed before the citizen was fed back, unless it was rejected or linked as a duplicate"
    )]
    pub detail: String,
    /// The machine code (the last segment of `type`).
    #[schema(example = "closed-before-feedback")]
    pub code: String,
    /// The request's id, as echoed in `x-request-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Invalid fields, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The case's current version, for 412 and 409 answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u32>,
    /// The cases the problem is about (e.g. the open cases a unit still holds).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cases: Vec<uuid::Uuid>,
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body, query or path did not parse.
    #[error("{detail}")]
    BadRequest {
        /// Machine code.
        code: &'static str,
        /// What.
        detail: String,
    },
    /// Fields failed validation.
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    /// No or a bad token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The role may never do this.
    #[error("your role may not do this")]
    Forbidden,
    /// Missing, or outside the caller's scope (indistinguishable on purpose).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A referenced resource (unit, category) does not exist or is inactive.
    #[error("{0}")]
    UnknownReference(String),
    /// `If-Match` named another version.
    #[error("the case is at version {current}, not the one in If-Match")]
    PreconditionFailed {
        /// The case's version.
        current: u32,
    },
    /// The domain refused the command.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A rule of a campaign record refused the command (422 for the input, 409 for the
    /// record's state).
    #[error(transparent)]
    Record(#[from] domain::records::RecordError),
    /// Writers kept getting in first.
    #[error("the case kept changing while the command was decided; retry")]
    Contention {
        /// The case's version.
        current: u32,
    },
    /// A unique name or code is taken.
    #[error("{0}")]
    Taken(String),
    /// The path exists, but not under this method; the `Allow` list.
    #[error("this path does not answer this method; it answers {0}")]
    MethodNotAllowed(String),
    /// An error the framework answered before any handler (a status without a Huiyin code).
    #[error("{}", .0.canonical_reason().unwrap_or("error"))]
    Status(StatusCode),
    /// The unit still holds open cases: re-route them (give a target unit) first.
    #[error("the unit still leads {} open case(s); give `reroute_to` to re-route them", .0.len())]
    UnitHoldsCases(Vec<uuid::Uuid>),
    /// The idempotency key was used for another request.
    #[error("the Idempotency-Key was already used with a different request")]
    IdempotencyMismatch,
    /// A reveal retried with its `Idempotency-Key` after the replay window
    /// (`HUIYIN_REVEAL_REPLAY_S`): a new look needs a new reveal, recorded anew.
    #[error(
        "this reveal was answered too long ago to be shown again under its key; send a new reveal with a new Idempotency-Key"
    )]
    RevealReplayExpired,
    /// The body is too large.
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The content type is not JSON.
    #[error("the body must be application/json")]
    UnsupportedMediaType,
    /// `Accept` admits none of the formats the resource is served in.
    #[error("Accept admits none of the formats served here: {offered}")]
    NotAcceptable {
        /// The media types offered.
        offered: &'static str,
    },
    /// The request took too long.
    #[error("the request took too long")]
    Timeout,
    /// The database cannot be reached in time.
    #[error("the service is busy; retry shortly")]
    Unavailable,
    /// As many long-running requests of a kind (event streams, exports) run as are admitted.
    #[error("at most {limit} {what} run at once{}; retry later", if *per_caller { " for one caller" } else { "" })]
    AtCapacity {
        /// What is at capacity ("event streams", "exports").
        what: &'static str,
        /// How many may run at once.
        limit: usize,
        /// Whether the limit is one caller's share rather than the instance's.
        per_caller: bool,
    },
    /// A client of the public side made more requests than its rate allows (429 with
    /// `Retry-After`).
    #[error("too many requests from this client; retry in {retry_after_s} s")]
    RateLimited {
        /// Seconds until the next request is admitted.
        retry_after_s: u64,
    },
    /// The integrity watch has found failures: no checkpoint is signed over them.
    #[error(
        "the integrity watch found {failures} failure(s) (see /api/v1/integrity/watch): no checkpoint vouches for a log that fails its checks"
    )]
    IntegrityAlarm {
        /// How many it found since the service started.
        failures: u64,
    },
    /// A bug or an outage; details are only logged.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } => code,
            Self::Validation(_) => "validation",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound(_) => "not-found",
            Self::UnknownReference(_) => "unknown-reference",
            Self::PreconditionFailed { .. } => "precondition-failed",
            Self::Domain(e) => e.code(),
            Self::Record(e) => e.code(),
            Self::Contention { .. } => "contention",
            Self::Taken(_) => "taken",
            Self::UnitHoldsCases(_) => "unit-holds-cases",
            Self::MethodNotAllowed(_) => "method-not-allowed",
            Self::Status(s) if s.is_server_error() => "internal",
            Self::Status(_) => "bad-request",
            Self::IdempotencyMismatch => "idempotency-key-reused",
            Self::RevealReplayExpired => "reveal-replay-expired",
            Self::PayloadTooLarge { .. } => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::NotAcceptable { .. } => "not-acceptable",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::AtCapacity { .. } => "at-capacity",
            Self::RateLimited { .. } => "rate-limited",
            Self::IntegrityAlarm { .. } => "integrity-alarm",
            Self::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "Malformed request",
            Self::Validation(_) => "Invalid fields",
            Self::Domain(e) if is_input_error(e) => "Invalid fields",
            Self::Unauthorized(_) => "Authentication required",
            Self::Forbidden => "Forbidden",
            Self::NotFound(_) => "Not found",
            Self::UnknownReference(_) => "Unknown reference",
            Self::PreconditionFailed { .. } => "Precondition failed",
            Self::Domain(_) => "Conflict with the case's state",
            Self::Record(e) if e.is_conflict() => "Conflict with the record's state",
            Self::Record(_) => "Invalid fields",
            Self::Contention { .. } => "Concurrent modification",
            Self::Taken(_) => "Already taken",
            Self::UnitHoldsCases(_) => "The unit still holds open cases",
            Self::MethodNotAllowed(_) => "Method not allowed",
            Self::Status(_) => "Request not served",
            Self::IdempotencyMismatch => "Idempotency key reused",
            Self::RevealReplayExpired => "Reveal replay expired",
            Self::PayloadTooLarge { .. } => "Payload too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::NotAcceptable { .. } => "Not acceptable",
            Self::Timeout => "Request timeout",
            Self::Unavailable => "Service unavailable",
            Self::AtCapacity { .. } => "Too many requests of this kind",
            Self::RateLimited { .. } => "Too many requests",
            Self::IntegrityAlarm { .. } => "Integrity alarm",
            Self::Internal(_) => "Internal error",
        }
    }

    /// The problem for a bare status the framework answered (see [`ApiError::Status`]).
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::NotFound("route"),
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge { limit: crate::middleware::MAX_JSON_BYTES },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::SERVICE_UNAVAILABLE => Self::Unavailable,
            s => Self::Status(s),
        }
    }

    /// Wraps any unexpected error.
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }

    /// The problem document, without the request id (added by the middleware).
    pub fn problem(&self) -> Problem {
        let errors = match self {
            Self::Validation(errors) => errors.clone(),
            Self::Domain(DomainError::Invalid(v)) => {
                vec![FieldError { field: v.field.into(), message: v.message.into() }]
            }
            _ => Vec::new(),
        };
        let current_version = match self {
            Self::PreconditionFailed { current } | Self::Contention { current } => Some(*current),
            _ => None,
        };
        let code = self.code();
        Problem {
            type_: format!("urn:huiyin:problem:{code}"),
            title: self.title().into(),
            status: self.status_code().as_u16(),
            detail: self.to_string(),
            code: code.into(),
            request_id: None,
            errors,
            current_version,
            cases: match self {
                Self::UnitHoldsCases(cases) => cases.clone(),
                _ => Vec::new(),
            },
        }
    }
}

/// Domain refusals that are about the request's own values (422), not the case's state (409).
fn is_input_error(e: &DomainError) -> bool {
    matches!(
        e,
        DomainError::Invalid(_)
            | DomainError::ReceivedInFuture
            | DomainError::DeadlineInPast
            | DomainError::DeadlineBeyondPolicy
            | DomainError::DeadlineNotLater
            | DomainError::ExtensionTooLong { .. }
            | DomainError::SelfDuplicate
            | DomainError::ReferralRequired
            | DomainError::InvalidCoUnits
            | DomainError::SuggestionAccusesNoOne
            | DomainError::NoticeTimeOutOfRange
            | DomainError::NoSuchQuestion
    )
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // A lost connection: whether a write committed is unknown, so never a 500 (which
            // says it failed); 503 with Retry-After, and the Idempotency-Key makes the retry safe.
            StoreError::Pool(_) | StoreError::Unavailable(_) => Self::Unavailable,
            StoreError::Timeout => Self::Timeout,
            StoreError::IdempotencyMismatch => Self::IdempotencyMismatch,
            StoreError::Conflict { actual, .. } => Self::Contention { current: actual },
            StoreError::Unique(c) if c == "records_serials_disjoint" => {
                Self::Record(domain::records::RecordError::SerialsOverlap)
            }
            StoreError::Unique(c) => Self::Taken(match c.as_str() {
                "units_parent_name_key" => "a unit with this name already exists under that parent".into(),
                "categories_code_key" => "a category with this code already exists".into(),
                _ => format!("a unique value is already taken ({c})"),
            }),
            // PostgreSQL quotes the value it refused (`invalid input syntax for type uuid: "…"`).
            StoreError::BadValue(m) => Self::BadRequest {
                code: "invalid-value",
                detail: format!("a value is out of range: {}", redact_values(&m)),
            },
            StoreError::Check(c) if c == "case_unit_active" => {
                Self::UnknownReference("unit_id: the unit is deactivated".into())
            }
            StoreError::ForeignKey(c) => Self::UnknownReference(match c.as_str() {
                "units_parent_id_fkey" => "parent_id names no unit".into(),
                "categories_default_unit_id_fkey" => "default_unit_id names no unit".into(),
                _ => format!("a reference names nothing ({c})"),
            }),
            other => Self::internal(other),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation(_) | Self::UnknownReference(_) | Self::IdempotencyMismatch => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Domain(e) if is_input_error(e) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Record(e) if e.is_conflict() => StatusCode::CONFLICT,
            Self::Record(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            Self::Domain(_) | Self::Contention { .. } | Self::Taken(_) | Self::UnitHoldsCases(_) => {
                StatusCode::CONFLICT
            }
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotAcceptable { .. } => StatusCode::NOT_ACCEPTABLE,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Status(s) => *s,
            Self::Timeout | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::AtCapacity { .. } | Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::IntegrityAlarm { .. } | Self::RevealReplayExpired => StatusCode::CONFLICT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(e) = self {
            tracing::error!(error.chain = %without_db_details(&error_chain(e.as_ref())), "internal error");
        }
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if matches!(self, Self::Unauthorized(_)) {
            resp.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if matches!(self, Self::Unavailable | Self::Timeout) {
            resp.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        if matches!(self, Self::AtCapacity { .. }) {
            resp.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
        }
        if let Self::RateLimited { retry_after_s } = self {
            resp.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_s)));
        }
        if let Self::MethodNotAllowed(allow) = self
            && let Ok(v) = HeaderValue::from_str(allow)
        {
            resp.insert_header((header::ALLOW, v));
        }
        // The request id is filled in by the request-id middleware, which sees every response.
        resp.body(serde_json::to_vec(&self.problem()).unwrap_or_default())
    }
}

/// An error and its sources, joined with ": ".
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// An error chain without PostgreSQL's `DETAIL:` lines, which quote row values (`Failing row
/// contains (…)`, `Key (…)=(…) already exists`): fit for a log line.
pub fn without_db_details(chain: &str) -> String {
    let mut out = String::with_capacity(chain.len());
    let mut rest = chain;
    while let Some(i) = rest.find("\nDETAIL:") {
        out.push_str(&rest[..i]);
        out.push_str("\nDETAIL: (redacted)");
        rest = &rest[i + 1..];
        rest = rest.find('\n').map_or("", |j| &rest[j..]);
    }
    out.push_str(rest);
    out
}

/// What a deserialisation error (serde's, from a JSON body, a query string or a path) says,
/// rewritten so that it names the field and the expected type but never a submitted value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputProblem {
    /// The field, when serde names it (a missing or duplicate field); field names come from the
    /// code, never from the request.
    pub field: Option<String>,
    /// What is wrong, without the value.
    pub message: String,
}

/// The kinds of value serde's `Unexpected` names ("invalid type: integer `5`, …"): the kind is
/// kept, the value dropped.
const VALUE_KINDS: &[&str] = &[
    "boolean",
    "integer",
    "floating point",
    "character",
    "string",
    "byte array",
    "unit value",
    "null",
    "Option value",
    "newtype struct",
    "sequence",
    "map",
    "enum",
    "unit variant",
    "newtype variant",
    "tuple variant",
    "struct variant",
];

/// Rewrites serde's message `msg` (without serde_json's " at line … column …", which callers
/// strip and report themselves) so that no submitted value survives:
///
/// - `invalid type: <kind> <value>, expected <what>` and `invalid value: …` keep the kind and
///   what was expected (the expectation comes from the code);
/// - `invalid length <n>, expected <what>` keeps what was expected;
/// - `unknown variant <value>, expected …` and `unknown field <key>, expected …` keep the list
///   of what is accepted, not what was sent;
/// - `missing field` / `duplicate field` name the field (a name from the code);
/// - anything else (a type's own message) goes through [`redact_values`].
pub fn describe_serde_error(msg: &str) -> InputProblem {
    let msg = msg.trim();
    // The expectation is the last ", expected " (a submitted value may contain the words too;
    // the code's expectation always comes last).
    let expected = |rest: &str| rest.rfind(", expected ").map(|i| rest[i + ", expected ".len()..].to_owned());
    let plain = |message: String| InputProblem { field: None, message };
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let what = prefix.trim_end_matches(": ");
            let kind = VALUE_KINDS
                .iter()
                .filter(|k| rest.starts_with(*k))
                .max_by_key(|k| k.len())
                .filter(|k| rest[k.len()..].starts_with([' ', ',', '`', '"']) || rest.len() == k.len());
            return plain(match (expected(rest), kind) {
                (Some(e), Some(k)) => format!("{what}: expected {e}, found {k}"),
                (Some(e), None) => format!("{what}: expected {e}"),
                (None, Some(k)) => format!("{what}: found {k}"),
                (None, None) => what.to_owned(),
            });
        }
    }
    for (prefix, what) in [
        ("invalid length ", "invalid length"),
        ("unknown variant ", "unknown variant"),
        ("unknown field ", "unknown field"),
    ] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            return plain(match expected(rest) {
                Some(e) => format!("{what}, expected {e}"),
                None => what.to_owned(),
            });
        }
    }
    for (prefix, message) in [("missing field `", "is required"), ("duplicate field `", "appears more than once")] {
        if let Some(name) = msg.strip_prefix(prefix).and_then(|r| r.strip_suffix('`')) {
            let is_name = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
            return InputProblem { field: is_name.then(|| name.to_owned()), message: message.into() };
        }
    }
    plain(redact_values(msg))
}

/// A message with every value it might quote replaced by `…`: anything between backticks or
/// quotes, any run of five or more digits, and any non-ASCII text (the service's own messages
/// are ASCII; names and addresses are not).
pub fn redact_values(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut chars = msg.chars().peekable();
    let ellipsis = |out: &mut String| {
        if !out.ends_with('…') {
            out.push('…');
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '`' | '"' => {
                // Up to the matching quote, or the end.
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
                ellipsis(&mut out);
            }
            '0'..='9' => {
                let mut run = String::from(c);
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    run.push(d);
                }
                if run.len() >= 5 { ellipsis(&mut out) } else { out.push_str(&run) }
            }
            c if !c.is_ascii() || c.is_ascii_control() => ellipsis(&mut out),
            c => out.push(c),
        }
    }
    out
}
