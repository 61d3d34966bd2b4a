//! Integrations (admins): notice templates, a case's notices, webhook endpoints, Open311
//! api_keys and the attribute definitions Open311 shows for a category.

use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse, delete, get, post, put};
use chrono::{DateTime, Utc};
use domain::{CaseId, CategoryId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Action, Principal};
use crate::dto::{Channel, ContactChannel, NoticeType};
use crate::extract::json_body;
use crate::open311::ServiceAttribute;
use crate::problem::{ApiError, FieldError};
use crate::startup::AppState;

/// The most characters of a template's subject.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// The most characters of a template's body.
pub const MAX_BODY_CHARS: usize = 2000;

/// A notice template.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NoticeTemplateView {
    /// What about.
    pub notice: NoticeType,
    /// Which channel.
    pub channel: ContactChannel,
    /// The mail's subject (text messages ignore it).
    pub subject: String,
    /// The text; `{receipt_code}`, `{due_date}`, `{reply}`, `{question}`, `{reason}` are filled in.
    pub body: String,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// By whom (absent: the text shipped with the migration).
    pub updated_by: Option<String>,
}

fn template_view(t: infra::outbox::Template) -> Option<NoticeTemplateView> {
    let notice = domain::NoticeType::parse(&t.notice)?;
    let channel = match t.channel.as_str() {
        "sms" => domain::ContactChannel::Sms,
        "email" => domain::ContactChannel::Email,
        _ => return None,
    };
    Some(NoticeTemplateView {
        notice: notice.into(),
        channel: channel.into(),
        subject: t.subject,
        body: t.body,
        updated_at: t.updated_at,
        updated_by: t.updated_by,
    })
}

/// A template's new text.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"subject": "受理告知", "body": "【回音】您反映的问题已受理，受理编号{receipt_code}。"}))]
pub struct NoticeTemplateRequest {
    /// 1 to 200 characters; placeholders allowed.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub subject: String,
    /// 1 to 2000 characters; only `{receipt_code}`, `{due_date}`, `{reply}`, `{question}`, `{reason}` may
    /// stand in braces.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub body: String,
}

/// The notice templates
///
/// Every notice type in both channels, in Chinese as shipped or as admins changed them.
#[utoipa::path(
    tag = "integrations",
    responses((status = 200, description = "The templates", body = Vec<NoticeTemplateView>)),
    security(("bearer" = []))
)]
#[get("/notice-templates")]
pub async fn list_templates(state: Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadNotices)?;
    let views: Vec<NoticeTemplateView> =
        infra::outbox::templates(&state.pool).await?.into_iter().filter_map(template_view).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// Change a notice template
///
/// Replaces the subject and body of one notice type's template in one channel. A placeholder
/// other than `{receipt_code}`, `{due_date}`, `{reply}`, `{question}`, `{reason}`, or an unbalanced brace,
/// is 422. Notices not yet sent use the new text.
#[utoipa::path(
    tag = "integrations",
    params(("notice" = NoticeType, Path, description = "The notice type"), ("channel" = ContactChannel, Path, description = "The channel")),
    request_body = NoticeTemplateRequest,
    responses((status = 200, description = "The template", body = NoticeTemplateView)),
    security(("bearer" = []))
)]
#[put("/notice-templates/{notice}/{channel}")]
pub async fn put_template(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    path: Path<(String, String)>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ManageIntegrations)?;
    // The path is read after the permission: a caller who may not learns 403 whatever it says.
    let bad_path = |what: &str| ApiError::BadRequest { code: "invalid-path", detail: format!("unknown {what}") };
    let (notice, channel) = path.into_inner();
    let notice = domain::NoticeType::parse(&notice).ok_or_else(|| bad_path("notice type"))?;
    let channel = match channel.as_str() {
        "sms" => domain::ContactChannel::Sms,
        "email" => domain::ContactChannel::Email,
        _ => return Err(bad_path("channel")),
    };
    let b: NoticeTemplateRequest = json_body(&req, &body)?;
    let mut errors = Vec::new();
    for (field, text, max) in [("subject", &b.subject, MAX_SUBJECT_CHARS), ("body", &b.body, MAX_BODY_CHARS)] {
        let controls = text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
        if let Err(m) = domain::notice::check_template(text, max) {
            errors.push(FieldError { field: field.into(), message: m.into() });
        } else if controls {
            errors.push(FieldError { field: field.into(), message: "must not contain control characters".into() });
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let t = infra::outbox::put_template(
        &state.pool,
        notice,
        channel,
        b.subject.trim(),
        b.body.trim(),
        principal.id.as_str(),
    )
    .await?
    .and_then(template_view)
    .ok_or(ApiError::NotFound("template"))?;
    Ok(HttpResponse::Ok().json(t))
}

/// A notice of a case's outbox.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OutboxView {
    /// Its id (the mail's `Message-ID`, the text message's `OutId`).
    pub id: Uuid,
    /// What about.
    pub notice: String,
    /// How.
    pub channel: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts made.
    pub attempts: i32,
    /// When it was written (with the events that owe it).
    pub created_at: DateTime<Utc>,
    /// When it is next tried, while pending.
    pub next_attempt_at: DateTime<Utc>,
    /// What the sender last said.
    pub last_error: Option<String>,
    /// When it was delivered or given up.
    pub settled_at: Option<DateTime<Utc>>,
}

/// A case's notices
///
/// The notices the case's events owed the citizen and where each stands; delivered and failed
/// ones are also events in the case's history (`case.notice_delivered`, `case.notice_failed`).
#[utoipa::path(
    tag = "integrations",
    params(("id" = Uuid, Path, description = "The case")),
    responses((status = 200, description = "The notices", body = Vec<OutboxView>)),
    security(("bearer" = []))
)]
#[get("/cases/{id}/notices/outbox")]
pub async fn case_outbox(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadNotices)?;
    // The case must exist for the caller (the same 404 as the case itself).
    crate::service::get(&state, &principal, CaseId::from_uuid(*id)).await?;
    let rows = infra::outbox::of_case(&state.pool, *id).await?;
    let views: Vec<OutboxView> = rows
        .into_iter()
        .map(|r| OutboxView {
            id: r.id,
            notice: r.notice,
            channel: r.channel,
            state: r.state,
            attempts: r.attempts,
            created_at: r.created_at,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            settled_at: r.settled_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

/// Registers a webhook endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://platform.example.cn/huiyin/hook", "event_types": ["case."]}))]
pub struct WebhookRequest {
    /// Where deliveries go: `http://` or `https://`, a host name (an IP address is taken too), an
    /// optional port, a path of visible ASCII; no credentials; at most 2000 characters.
    #[schema(
        max_length = 2000,
        pattern = r"^https?://([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(:[0-9]{1,4})?(/[!-~]*)?$"
    )]
    pub url: String,
    /// Event-type prefixes to deliver (`case.`, `case.fed_back`, `meeting.`); empty or absent:
    /// every event. At most 20, each 1 to 100 characters of `a-z`, `_` and `.`.
    #[serde(default)]
    #[schema(max_items = 20, value_type = Vec<EventTypePrefix>)]
    pub event_types: Vec<String>,
    /// `true`: start at the beginning of the feed (every event ever); `false` (the default):
    /// start at its head (what happens from now on).
    #[serde(default)]
    pub from_start: bool,
}

/// An event-type prefix: 1 to 100 characters of `a-z`, `_` and `.` (`case.`, `case.fed_back`).
/// (Only the spec's schema of a list item; the list holds strings.)
pub struct EventTypePrefix;

impl utoipa::PartialSchema for EventTypePrefix {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some("An event-type prefix: 1 to 100 characters of a-z, _ and ."))
            .min_length(Some(1))
            .max_length(Some(100))
            .pattern(Some("^[a-z_.]+$"))
            .into()
    }
}

impl ToSchema for EventTypePrefix {}

/// A webhook endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookView {
    /// Its id.
    pub id: Uuid,
    /// Where deliveries go.
    pub url: String,
    /// The prefixes delivered.
    pub event_types: Vec<String>,
    /// Whether it receives deliveries.
    pub active: bool,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// By whom.
    pub created_by: String,
    /// The feed position of the last event delivered or skipped.
    pub cursor: String,
    /// Events delivered.
    pub delivered: i64,
    /// Failed attempts since the last success.
    pub consecutive_failures: i32,
    /// When the next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
    /// The receiver's last HTTP status.
    pub last_status: Option<i32>,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was disabled, if it is.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why it was last disabled.
    pub disabled_reason: Option<String>,
}

impl From<infra::webhooks::Endpoint> for WebhookView {
    fn from(e: infra::webhooks::Endpoint) -> Self {
        Self {
            id: e.id,
            url: e.url,
            event_types: e.event_types,
            active: e.active,
            created_at: e.created_at,
            created_by: e.created_by,
            cursor: e.cursor,
            delivered: e.delivered,
            consecutive_failures: e.consecutive_failures,
            next_attempt_at: e.next_attempt_at,
            last_status: e.last_status,
            last_error: e.last_error,
            disabled_at: e.disabled_at,
            disabled_reason: e.disabled_reason,
        }
    }
}

/// A registered endpoint and its signing secret, shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookCreated {
    /// The endpoint.
    pub endpoint: WebhookView,
    /// The HMAC-SHA256 key of `Huiyin-Signature` (64 hex characters).
    pub secret: String,
}

/// Disables an endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    /// Why: 1 to 1000 characters.
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub reason: String,
}

fn check_event_types(types: &[String]) -> Result<(), ApiError> {
    let ok = |t: &String| {
        (1..=100).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
    };
    if types.len() > 20 || !types.iter().all(ok) {
        return Err(ApiError::Validation(vec![FieldError {
            field: "event_types".into(),
            message: "at most 20 prefixes, each 1 to 100 characters of a-z, _ and .".into(),
        }]));
    }
    Ok(())
}

fn check_url(url: &str, allow_private: bool) -> Result<(), ApiError> {
    let refuse =
        |message: &str| Err(ApiError::Validation(vec![FieldError { field: "url".into(), message: message.into() }]));
    let parsed = reqwest::Url::parse(url).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some()
            && u.username().is_empty()
            && u.password().is_none()
    });
    let Some(parsed) = parsed.filter(|_| url.len() <= 2000) else {
        return refuse("must be an http(s) URL with a host and no credentials, at most 2000 characters");
    };
    if !allow_private && parsed.host().is_some_and(|h| !is_public_host(&h)) {
        return refuse("must name a public host: loopback, private, link-local and local names are refused");
    }
    Ok(())
}

/// Whether a URL's host may be reached from the service: not a loopback, private, link-local,
/// shared, unspecified, multicast or documentation address, nor a local name (`localhost`,
/// `*.local`, `*.internal`). Checked on the host as the URL standard reads it (so `0x7f000001`
/// is 127.0.0.1); a public name that resolves to a private address is not caught here.
pub fn is_public_host(host: &url::Host<&str>) -> bool {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let v4 = |a: Ipv4Addr| {
        let o = a.octets();
        !(a.is_loopback()
            || a.is_private()
            || a.is_link_local()
            || a.is_unspecified()
            || a.is_broadcast()
            || a.is_multicast()
            || a.is_documentation()
            || o[0] == 0
            || (o[0] == 100 && (64..128).contains(&o[1])))
    };
    let v6 = |a: Ipv6Addr| {
        let first = a.segments()[0];
        match a.to_ipv4_mapped() {
            Some(m) => v4(m),
            None => {
                !(a.is_loopback()
                    || a.is_unspecified()
                    || a.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        }
    };
    match host {
        url::Host::Ipv4(a) => v4(*a),
        url::Host::Ipv6(a) => v6(*a),
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            !(d == "localhost" || d.ends_with(".localhost") || d.ends_with(".local") || d.ends_with(".internal"))
        }
    }
}

/// Register a webhook endpoint
///
/// The URL must name a public host (a loopback, private or link-local address is 422 unless
/// `HUIYIN_WEBHOOK_ALLOW_PRIVATE` is on; redirects are never followed).
/// The endpoint receives every event of the feed whose type starts with one of `event_types`,
/// one POST per event in feed order, signed (`Huiyin-Signature: t=…,v1=<HMAC-SHA256(secret,
/// "<t>.<body>")>`), with the event's `Huiyin-Feed-Position` to dedupe by. A non-2xx answer is
/// retried with a back-off; after `HUIYIN_WEBHOOK_DISABLE_AFTER` failures in a row the endpoint
/// is disabled, with a record. The secret is shown only in this answer.
#[utoipa::path(
    tag = "integrations",
    request_body = WebhookRequest,
    responses((status = 201, description = "Registered", body = WebhookCreated)),
    security(("bearer" = []))
)]
#[post("/webhooks")]
pub async fn create_webhook(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ManageIntegrations)?;
    let b: WebhookRequest = json_body(&req, &body)?;
    check_url(&b.url, state.webhook_allow_private)?;
    check_event_types(&b.event_types)?;
    let from = if b.from_start { infra::FeedCursor::START } else { infra::webhooks::feed_head(&state.pool).await? };
    let secret = random_hex();
    let e = infra::webhooks::create(&state.pool, &b.url, &secret, &b.event_types, from, principal.id.as_str()).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/webhooks/{}", e.id)))
        .json(WebhookCreated { endpoint: e.into(), secret }))
}

fn random_hex() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// The webhook endpoints
///
/// Every registered endpoint with where it stands: its cursor in the feed, deliveries, the last
/// status and error, and whether (and why) it is disabled. Never the secret.
#[utoipa::path(
    tag = "integrations",
    responses((status = 200, description = "The endpoints, newest first", body = Vec<WebhookView>)),
    security(("bearer" = []))
)]
#[get("/webhooks")]
pub async fn list_webhooks(state: Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ManageIntegrations)?;
    let views: Vec<WebhookView> = infra::webhooks::list(&state.pool).await?.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// A webhook endpoint
///
/// One endpoint with where it stands (404 when there is none).
#[utoipa::path(
    tag = "integrations",
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses((status = 200, description = "The endpoint", body = WebhookView)),
    security(("bearer" = []))
)]
#[get("/webhooks/{id}")]
pub async fn get_webhook(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ManageIntegrations)?;
    let e = infra::webhooks::get(&state.pool, *id).await?.ok_or(ApiError::NotFound("webhook endpoint"))?;
    Ok(HttpResponse::Ok().json(WebhookView::from(e)))
}

/// Enable a webhook endpoint
///
/// A disabled endpoint receives deliveries again, from where it stopped.
#[utoipa::path(
    tag = "integrations",
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses((status = 200, description = "The endpoint", body = WebhookView)),
    security(("bearer" = []))
)]
#[post("/webhooks/{id}/enable")]
pub async fn enable_webhook(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ManageIntegrations)?;
    if !infra::webhooks::set_active(&state.pool, *id, true, principal.id.as_str(), "").await? {
        return Err(ApiError::NotFound("webhook endpoint"));
    }
    let e = infra::webhooks::get(&state.pool, *id).await?.ok_or(ApiError::NotFound("webhook endpoint"))?;
    Ok(HttpResponse::Ok().json(WebhookView::from(e)))
}

/// Disable a webhook endpoint
///
/// No more deliveries until it is enabled; the reason is recorded.
#[utoipa::path(
    tag = "integrations",
    params(("id" = Uuid, Path, description = "The endpoint")),
    request_body = DisableRequest,
    responses((status = 200, description = "The endpoint", body = WebhookView)),
    security(("bearer" = []))
)]
#[post("/webhooks/{id}/disable")]
pub async fn disable_webhook(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: Path<Uuid>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ManageIntegrations)?;
    let b: DisableRequest = json_body(&req, &body)?;
    let why = crate::service::reason("reason", &b.reason)?;
    if !infra::webhooks::set_active(&state.pool, *id, false, principal.id.as_str(), why.as_str()).await? {
        return Err(ApiError::NotFound("webhook endpoint"));
    }
    let e = infra::webhooks::get(&state.pool, *id).await?.ok_or(ApiError::NotFound("webhook endpoint"))?;
    Ok(HttpResponse::Ok().json(WebhookView::from(e)))
}

/// Issues an Open311 api_key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "市12345平台", "channel": "web"}))]
pub struct ApiKeyRequest {
    /// What it is for: 1 to 100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    /// The channel the requests it posts come in by, and the only channel whose requests it
    /// reads.
    pub channel: Channel,
}

/// An Open311 api_key (never the key itself, except when issued).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// Its id.
    pub id: Uuid,
    /// What it is for.
    pub name: String,
    /// Its channel.
    pub channel: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// By whom.
    pub created_by: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<infra::access::ApiKey> for ApiKeyView {
    fn from(k: infra::access::ApiKey) -> Self {
        Self {
            id: k.id,
            name: k.name,
            channel: k.channel,
            created_at: k.created_at,
            created_by: k.created_by,
            revoked_at: k.revoked_at,
        }
    }
}

/// An api_key just issued: the key is shown this once (only its SHA-256 is kept).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    /// The key record.
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// The api_key (64 hex characters).
    pub api_key: String,
}

/// The SHA-256 of an api_key, as stored.
pub fn key_hash(api_key: &str) -> [u8; 32] {
    Sha256::digest(api_key.as_bytes()).into()
}

/// Issue an Open311 api_key
///
/// The key posts requests (`POST /open311/v2/requests.json`) that come in by its channel and
/// reads the requests of that channel. Shown only in this answer.
#[utoipa::path(
    tag = "integrations",
    request_body = ApiKeyRequest,
    responses((status = 201, description = "Issued", body = ApiKeyCreated)),
    security(("bearer" = []))
)]
#[post("/open311-keys")]
pub async fn create_key(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ManageIntegrations)?;
    let b: ApiKeyRequest = json_body(&req, &body)?;
    let name =
        domain::Name::parse(&b.name).ok().filter(|n| !n.as_str().chars().any(char::is_control)).ok_or_else(|| {
            ApiError::Validation(vec![FieldError {
                field: "name".into(),
                message: "must be 1 to 100 characters, not blank, no control characters".into(),
            }])
        })?;
    let api_key = random_hex();
    let channel = domain::Channel::from(b.channel);
    let channel = serde_json::to_value(channel).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let k = infra::access::create_key(&state.pool, &key_hash(&api_key), name.as_str(), &channel, principal.id.as_str())
        .await?;
    Ok(HttpResponse::Created().json(ApiKeyCreated { key: k.into(), api_key }))
}

/// The Open311 api_keys
///
/// Every key issued, with its channel and whether it was revoked. Never the key itself.
#[utoipa::path(
    tag = "integrations",
    responses((status = 200, description = "The keys, newest first", body = Vec<ApiKeyView>)),
    security(("bearer" = []))
)]
#[get("/open311-keys")]
pub async fn list_keys(state: Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ManageIntegrations)?;
    let views: Vec<ApiKeyView> = infra::access::keys(&state.pool).await?.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// Revoke an Open311 api_key
///
/// The key is refused from now on (403 in the spec's format); the record stays.
#[utoipa::path(
    tag = "integrations",
    params(("id" = Uuid, Path, description = "The key")),
    responses((status = 204, description = "Revoked")),
    security(("bearer" = []))
)]
#[delete("/open311-keys/{id}")]
pub async fn revoke_key(state: Data<AppState>, principal: Principal, id: Path<Uuid>) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ManageIntegrations)?;
    if !infra::access::revoke_key(&state.pool, *id).await? {
        return Err(ApiError::NotFound("api key"));
    }
    Ok(HttpResponse::NoContent().finish())
}

/// The extra fields a category asks for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributesRequest {
    /// The attribute definitions, as Open311's service definition shows them; at most 20.
    #[schema(max_items = 20)]
    pub attributes: Vec<ServiceAttribute>,
}

/// Set a category's extra fields
///
/// The fields a request of this category asks for (Open311 `services/{code}.json`): each with
/// a code, a data type, whether it is required, and for lists their values. A request posted
/// through Open311 must give the required ones; their answers are added to its description.
#[utoipa::path(
    tag = "integrations",
    params(("id" = Uuid, Path, description = "The category")),
    request_body = AttributesRequest,
    responses((status = 200, description = "The attributes as stored", body = AttributesRequest)),
    security(("bearer" = []))
)]
#[put("/categories/{id}/attributes")]
pub async fn put_attributes(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: Path<Uuid>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::WriteReference)?;
    let b: AttributesRequest = json_body(&req, &body)?;
    crate::open311::check_attributes(&b.attributes)?;
    let value = serde_json::to_value(&b.attributes).map_err(ApiError::internal)?;
    state
        .reference
        .set_category_attributes(CategoryId::from_uuid(*id), &value)
        .await?
        .ok_or(ApiError::NotFound("category"))?;
    Ok(HttpResponse::Ok().json(b))
}

/// Registers the routes (under `/api/v1`).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_templates)
        .service(put_template)
        .service(case_outbox)
        .service(create_webhook)
        .service(list_webhooks)
        .service(get_webhook)
        .service(enable_webhook)
        .service(disable_webhook)
        .service(create_key)
        .service(list_keys)
        .service(revoke_key)
        .service(put_attributes);
}
