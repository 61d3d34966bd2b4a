//! `/open311/v2`: the Open311 GeoReport v2 facade (shapes and the state mapping in
//! [`crate::open311`]). Every answer is JSON or XML by the path's extension; errors are the
//! spec's list of `{code, description}` with 400, 403 or 404. Requests posted here are cases
//! like any other (their channel is the api_key's, their actor `open311:<key id>`). Reading
//! requests needs an api_key too (the spec leaves that to the jurisdiction): complaints to a
//! discipline committee are not public, and a key reads only the requests it posted.

use actix_web::http::StatusCode;
use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse, get, post};
use chrono::{Duration, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::dto::RegisterCaseRequest;
use crate::open311::*;
use crate::problem::ApiError;
use crate::startup::AppState;

/// The spec's default and largest window of `GET requests`, in days.
pub const WINDOW_DAYS: i64 = 90;
/// The spec's default and largest number of requests answered.
pub const MAX_REQUESTS: i64 = 1000;
/// The spec's limit of a description, in characters.
pub const MAX_DESCRIPTION: usize = 4000;

const SPEC: &str = "http://wiki.open311.org/GeoReport_v2";
const CHANGESET: &str = "2026-12-01T00:00:00+08:00";

fn reply<T: serde::Serialize, X: serde::Serialize>(
    format: Format,
    status: StatusCode,
    json: &T,
    xml: &X,
) -> Result<HttpResponse, ApiError> {
    let body = match format {
        Format::Json => serde_json::to_string(json).map_err(ApiError::internal)?,
        Format::Xml => to_xml(xml)?,
    };
    Ok(HttpResponse::build(status).content_type(format.content_type()).body(body))
}

/// An answer in the spec's error format.
pub fn errors(format: Format, status: u16, list: Vec<(u16, String)>) -> HttpResponse {
    let list: Vec<Open311Error> =
        list.into_iter().map(|(code, description)| Open311Error { code, description }).collect();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = match format {
        Format::Json => serde_json::to_string(&list).unwrap_or_default(),
        Format::Xml => to_xml(&Errors { error: list }).unwrap_or_default(),
    };
    HttpResponse::build(status).content_type(format.content_type()).body(body)
}

fn one_error(format: Format, status: u16, description: &str) -> HttpResponse {
    errors(format, status, vec![(status, description.to_owned())])
}

/// An [`ApiError`] in the spec's format: 404 stays 404, a bad key 403, anything else the client
/// sent is 400; an outage keeps its status (the spec knows no 5xx, but a 503 is still true).
fn from_api(format: Format, e: &ApiError) -> HttpResponse {
    let status = actix_web::ResponseError::status_code(e).as_u16();
    let list: Vec<(u16, String)> = match e {
        ApiError::Validation(fields) => fields.iter().map(|f| (400, format!("{}: {}", f.field, f.message))).collect(),
        _ => vec![(status, e.to_string())],
    };
    let status = match status {
        404 | 403 => status,
        s if s >= 500 => s,
        _ => 400,
    };
    errors(format, status, list)
}

fn format_of(ext: &str) -> Result<Format, Box<HttpResponse>> {
    Format::parse(ext).ok_or_else(|| Box::new(one_error(Format::Json, 404, "unknown format: use .json or .xml")))
}

/// The key's channel and the actor its requests are registered as (`open311:<key id>`).
async fn key_channel(
    state: &AppState,
    format: Format,
    api_key: Option<&str>,
) -> Result<(String, String), Box<HttpResponse>> {
    let Some(key) = api_key.map(str::trim).filter(|k| !k.is_empty() && k.len() <= 200) else {
        return Err(Box::new(one_error(format, 403, "an api_key is required")));
    };
    match infra::access::key_by_hash(&state.pool, &crate::routes::integrations::key_hash(key)).await {
        Ok(Some((id, channel))) => Ok((channel, format!("open311:{id}"))),
        Ok(None) => Err(Box::new(one_error(format, 403, "invalid api_key"))),
        Err(e) => Err(Box::new(from_api(format, &e.into()))),
    }
}

/// Service discovery
///
/// The endpoints, their specification and formats.
#[utoipa::path(
    tag = "open311",
    params(("ext" = String, Path, description = "The format: `json` or `xml`.", max_length = 4, pattern = "^(json|xml)$")),
    responses((status = 200, description = "The discovery document (JSON; XML by the extension)", content((DiscoveryJson = "application/json"), (String = "text/xml")))),
    security(())
)]
#[get("/discovery.{ext}")]
pub async fn discovery(req: HttpRequest, path: Path<String>) -> HttpResponse {
    let format = match format_of(&path) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let base = format!("{}://{}/open311/v2", req.connection_info().scheme(), req.connection_info().host());
    let d = Discovery {
        changeset: CHANGESET.into(),
        contact: "镇纪委纠风工作专班".into(),
        key_service: "api_keys are issued by the committee's administrators (POST /api/v1/open311-keys)".into(),
        endpoints: Endpoints {
            endpoint: vec![DiscoveryEndpoint {
                specification: SPEC.into(),
                url: base,
                changeset: CHANGESET.into(),
                type_: "production".into(),
                formats: Formats { format: vec!["application/json".into(), "text/xml".into()] },
            }],
        },
    };
    let json = DiscoveryJson::from(&d);
    reply(format, StatusCode::OK, &json, &d).unwrap_or_else(|e| from_api(format, &e))
}

fn service_of(c: &infra::reference::Category) -> Service {
    let attrs: Vec<ServiceAttribute> = serde_json::from_value(c.attributes.clone()).unwrap_or_default();
    Service {
        service_code: c.code.clone(),
        service_name: c.name.clone(),
        description: c.name.clone(),
        metadata: !attrs.is_empty(),
        type_: "realtime".into(),
        keywords: c.code.replace(['.', '_', '-'], ","),
        group: c.kind.clone().unwrap_or_default(),
    }
}

/// The services
///
/// The active categories as services.
#[utoipa::path(
    tag = "open311",
    params(("ext" = String, Path, description = "The format: `json` or `xml`.", max_length = 4, pattern = "^(json|xml)$")),
    responses((status = 200, description = "The services (JSON; XML by the extension)", content((Vec<Service> = "application/json"), (String = "text/xml")))),
    security(())
)]
#[get("/services.{ext}")]
pub async fn services(state: Data<AppState>, path: Path<String>) -> HttpResponse {
    let format = match format_of(&path) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let work = async {
        let list: Vec<Service> =
            state.reference.list_categories().await?.iter().filter(|c| c.active).map(service_of).collect();
        reply(format, StatusCode::OK, &list, &Services { service: list.clone() })
    };
    work.await.unwrap_or_else(|e| from_api(format, &e))
}

/// A service definition
///
/// The attributes a service (category) asks for; 404 for an unknown or inactive service.
#[utoipa::path(
    tag = "open311",
    params(("service_code" = String, Path, description = "The service's code (a category's).", max_length = 32, pattern = "^[a-z0-9][a-z0-9_.-]{0,31}$"), ("ext" = String, Path, description = "The format: `json` or `xml`.", max_length = 4, pattern = "^(json|xml)$")),
    responses((status = 200, description = "The definition (JSON; XML by the extension)", content((ServiceDefinition = "application/json"), (String = "text/xml")))),
    security(())
)]
#[get("/services/{service_code}.{ext}")]
pub async fn service_definition(state: Data<AppState>, path: Path<(String, String)>) -> HttpResponse {
    let (code, ext) = path.into_inner();
    let format = match format_of(&ext) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let category = match state.reference.category_by_code(&code).await {
        Ok(Some(c)) if c.active => c,
        Ok(_) => return one_error(format, 404, "service_code not found"),
        Err(e) => return from_api(format, &e.into()),
    };
    let mut attributes: Vec<ServiceAttribute> = serde_json::from_value(category.attributes).unwrap_or_default();
    attributes.sort_by_key(|a| a.order);
    let d = ServiceDefinition { service_code: category.code, attributes };
    reply(format, StatusCode::OK, &d, &ServiceDefinitionXml::from(&d)).unwrap_or_else(|e| from_api(format, &e))
}

/// `GET requests`'s query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestsQuery {
    /// The key issued by the committee.
    #[param(min_length = 1, max_length = 200)]
    pub api_key: Option<String>,
    /// Receipt codes, comma-separated (at most 100): overrides every other filter. Blank counts
    /// as absent (as for every parameter here).
    #[param(max_length = 2100, pattern = "^[0-9A-Za-z, -]*$")]
    pub service_request_id: Option<String>,
    /// Service codes, comma-separated.
    #[param(max_length = 2000, pattern = "^[a-z0-9_., -]*$")]
    pub service_code: Option<String>,
    /// Received at or after (W3C datetime with an offset, 2000–2099).
    #[param(max_length = 40, pattern = "^(20[0-9]{2}-.*)?$")]
    pub start_date: Option<String>,
    /// Received before (W3C datetime with an offset, 2000–2099); at most 90 days after
    /// `start_date`.
    #[param(max_length = 40, pattern = "^(20[0-9]{2}-.*)?$")]
    pub end_date: Option<String>,
    /// `open`, `closed`, or both comma-separated.
    #[param(max_length = 20, pattern = "^((open|closed)(, ?(open|closed))?)?$")]
    pub status: Option<String>,
    /// Not used (one jurisdiction).
    #[param(max_length = 200, pattern = "^[^\\x00-\\x1F]*$")]
    pub jurisdiction_id: Option<String>,
}

fn status_notes(row: &infra::open311::RequestRow) -> String {
    let words = match row.status.as_str() {
        _ if row.withdrawn => "已撤回",
        "received" => "已登记，等待受理",
        "rejected" => "不予受理",
        "assigned" => "办理中",
        "handled" => "已办理，等待答复",
        "fed_back" => "已答复",
        "closed" => "已办结",
        _ => "办理中",
    };
    match &row.reply {
        Some(r) if matches!(row.status.as_str(), "fed_back" | "closed") && !row.withdrawn => format!("{words}：{r}"),
        _ => words.to_owned(),
    }
}

async fn request_of(state: &AppState, row: infra::open311::RequestRow) -> Result<ServiceRequest, ApiError> {
    let category = match row.category_id {
        Some(id) => state.reference.category(domain::CategoryId::from_uuid(id)).await?,
        None => None,
    };
    let unit = match row.unit_id {
        Some(id) => state.reference.unit(domain::UnitId::from_uuid(id)).await?.map(|u| u.name),
        None => None,
    };
    let location: Option<domain::Location> = row.location.clone().and_then(|l| serde_json::from_value(l).ok());
    let coordinates = location.as_ref().and_then(|l| l.coordinates.clone());
    let closed = matches!(row.status.as_str(), "closed" | "rejected");
    Ok(ServiceRequest {
        service_request_id: row.receipt_code.clone(),
        status: if closed { "closed" } else { "open" }.into(),
        status_notes: Some(status_notes(&row)),
        service_name: category.as_ref().map(|c| c.name.clone()),
        service_code: category.as_ref().map(|c| c.code.clone()),
        description: row.description.clone(),
        agency_responsible: unit,
        service_notice: None,
        requested_datetime: w3c(row.received_at),
        updated_datetime: w3c(row.updated_at),
        expected_datetime: row.overall_due_at.filter(|_| !closed).map(w3c),
        address: location.and_then(|l| l.address).map(|a| a.as_str().to_owned()),
        address_id: None,
        zipcode: None,
        lat: coordinates.as_ref().map(domain::Coordinates::lat_degrees),
        long: coordinates.as_ref().map(domain::Coordinates::long_degrees),
        media_url: None,
    })
}

fn parse_time(field: &str, s: &str) -> Result<chrono::DateTime<Utc>, (u16, String)> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .filter(|t| crate::service::bounded_time(field, *t).is_ok())
        .ok_or((400, format!("{field} must be a W3C datetime with an offset, between 2000 and 2099")))
}

/// A comma-separated parameter; blank counts as absent (the spec: "the response should be the
/// same whether a parameter is passed and is empty or is not passed at all").
fn list(s: &Option<String>) -> Option<Vec<String>> {
    let items: Vec<String> = s.as_ref()?.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect();
    (!items.is_empty()).then_some(items)
}

/// Service requests
///
/// The requests of the api_key's channel received in a window (the last 90 days by default, at
/// most 90 days), newest first, at most 1000; filtered by service codes and `open` / `closed`,
/// or picked by receipt code (`service_request_id`, which overrides the rest).
#[utoipa::path(
    tag = "open311",
    params(("ext" = String, Path, description = "The format: `json` or `xml`.", max_length = 4, pattern = "^(json|xml)$"), RequestsQuery),
    responses((status = 200, description = "The requests (JSON; XML by the extension)", content((Vec<ServiceRequest> = "application/json"), (String = "text/xml")))),
    security(())
)]
#[get("/requests.{ext}")]
pub async fn list_requests(state: Data<AppState>, req: HttpRequest, path: Path<String>) -> HttpResponse {
    let format = match format_of(&path) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let q: RequestsQuery = match crate::extract::query(&req) {
        Ok(q) => q,
        Err(e) => return from_api(format, &e),
    };
    let (channel, posted_by) = match key_channel(&state, format, q.api_key.as_deref()).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let mut problems = Vec::new();
    let now = Utc::now();
    let blank_free = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let (start_date, end_date) = (blank_free(&q.start_date), blank_free(&q.end_date));
    let start = start_date.as_deref().map(|s| parse_time("start_date", s)).transpose().unwrap_or_else(|e| {
        problems.push(e);
        None
    });
    let end = end_date.as_deref().map(|s| parse_time("end_date", s)).transpose().unwrap_or_else(|e| {
        problems.push(e);
        None
    });
    let window = Duration::days(WINDOW_DAYS);
    let (from, to) = match (start, end) {
        (Some(s), Some(e)) => (s, e),
        (Some(s), None) => (s, (s + window).min(now + Duration::seconds(1))),
        (None, Some(e)) => (e - window, e),
        (None, None) => (now - window, now + Duration::seconds(1)),
    };
    if to < from {
        problems.push((400, "end_date must not be before start_date".to_owned()));
    } else if to - from > window + Duration::seconds(1) {
        problems.push((400, format!("start_date to end_date may not span more than {WINDOW_DAYS} days")));
    }
    let statuses = match list(&q.status) {
        None => None,
        Some(v) => {
            let mut s = Vec::new();
            for x in &v {
                match x.as_str() {
                    "open" => s.extend(["received", "assigned", "handled", "fed_back"].map(String::from)),
                    "closed" => s.extend(["closed", "rejected"].map(String::from)),
                    _ => problems.push((400, "status is open, closed, or both comma-separated".to_owned())),
                }
            }
            Some(s)
        }
    };
    let receipt_codes = list(&q.service_request_id);
    if receipt_codes.as_ref().is_some_and(|c| c.len() > 100) {
        problems.push((400, "at most 100 service_request_ids".to_owned()));
    }
    if !problems.is_empty() {
        return errors(format, 400, problems);
    }
    let work = async {
        let categories = match list(&q.service_code) {
            None => None,
            Some(codes) => {
                let all = state.reference.list_categories().await?;
                Some(all.iter().filter(|c| codes.contains(&c.code)).map(|c| c.id.as_uuid()).collect::<Vec<_>>())
            }
        };
        let filter = infra::open311::RequestFilter {
            channel,
            posted_by,
            from,
            to,
            categories,
            statuses,
            receipt_codes: receipt_codes.map(|c| c.into_iter().map(|x| x.to_ascii_uppercase()).collect()),
            limit: MAX_REQUESTS,
        };
        let mut out = Vec::new();
        for row in infra::open311::requests(&state.pool, &filter).await? {
            out.push(request_of(&state, row).await?);
        }
        reply(format, StatusCode::OK, &out, &ServiceRequests { request: out.clone() })
    };
    work.await.unwrap_or_else(|e| from_api(format, &e))
}

/// The api_key of a request that reads.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyQuery {
    /// The key issued by the committee.
    #[param(min_length = 1, max_length = 200)]
    pub api_key: Option<String>,
    /// Not used (one jurisdiction).
    #[param(max_length = 200, pattern = "^[^\\x00-\\x1F]*$")]
    pub jurisdiction_id: Option<String>,
}

/// A service request
///
/// One request of the api_key's channel, by its receipt code (a list of one, as the spec has
/// it); 404 when there is none.
#[utoipa::path(
    tag = "open311",
    params(("service_request_id" = String, Path, description = "The receipt code.", max_length = 20, pattern = r"^[Hh][Yy]-[0-9]{8}-[0-9A-Za-z]{8}$"), ("ext" = String, Path, description = "The format: `json` or `xml`.", max_length = 4, pattern = "^(json|xml)$"), KeyQuery),
    responses((status = 200, description = "The request (JSON; XML by the extension)", content((Vec<ServiceRequest> = "application/json"), (String = "text/xml")))),
    security(())
)]
#[get("/requests/{service_request_id}.{ext}")]
pub async fn get_request(state: Data<AppState>, req: HttpRequest, path: Path<(String, String)>) -> HttpResponse {
    let (id, ext) = path.into_inner();
    let format = match format_of(&ext) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let q: KeyQuery = match crate::extract::query(&req) {
        Ok(q) => q,
        Err(e) => return from_api(format, &e),
    };
    let (channel, posted_by) = match key_channel(&state, format, q.api_key.as_deref()).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Ok(code) = domain::ReceiptCode::parse(&id) else {
        return one_error(format, 404, "service_request_id not found");
    };
    let work = async {
        let filter = infra::open311::RequestFilter {
            channel,
            posted_by,
            from: Utc::now(),
            to: Utc::now(),
            categories: None,
            statuses: None,
            receipt_codes: Some(vec![code.as_str().to_owned()]),
            limit: 1,
        };
        let Some(row) = infra::open311::requests(&state.pool, &filter).await?.into_iter().next() else {
            return Ok(one_error(format, 404, "service_request_id not found"));
        };
        let r = request_of(&state, row).await?;
        reply(format, StatusCode::OK, &vec![r.clone()], &ServiceRequests { request: vec![r] })
    };
    work.await.unwrap_or_else(|e| from_api(format, &e))
}

/// The fields of `POST requests` (`application/x-www-form-urlencoded`). Besides what the schema
/// states: a location is required (`lat` and `long`, or `address_string`), and the service's
/// required attributes (`attribute[<code>]`) must be given: 400 names what is missing.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateRequestForm {
    /// The key issued by the committee.
    #[schema(min_length = 1, max_length = 200, pattern = "^[!-~]+$")]
    pub api_key: String,
    /// The service (category) code.
    #[schema(min_length = 1, max_length = 32, pattern = "^[a-z0-9][a-z0-9_.-]{0,31}$")]
    pub service_code: String,
    /// Latitude (WGS 84); with `long`. One of `lat` & `long` or `address_string` is required.
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub lat: Option<f64>,
    /// Longitude (WGS 84); with `lat`.
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub long: Option<f64>,
    /// The address: 1 to 200 characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub address_string: Option<String>,
    /// Not used.
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub address_id: Option<String>,
    /// The reporter's email (for notices); blank counts as absent.
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
    )]
    pub email: Option<String>,
    /// Not used.
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub device_id: Option<String>,
    /// Not used.
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub account_id: Option<String>,
    /// The reporter's given name; blank counts as absent.
    #[schema(max_length = 25, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub first_name: Option<String>,
    /// The reporter's family name; blank counts as absent.
    #[schema(max_length = 25, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub last_name: Option<String>,
    /// The reporter's phone (for notices): 7 to 15 digits, optionally after `+86`.
    #[schema(max_length = 20, pattern = r"^[ -]*(\+[ -]*8[ -]*6)?([ -]*[0-9]){7,15}[ -]*$")]
    pub phone: Option<String>,
    /// What is reported: at most 4000 characters.
    #[schema(max_length = 4000, pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$")]
    pub description: Option<String>,
    /// A photo's URL: added to the description.
    #[schema(max_length = 500, pattern = r"^https?://[^\s]+$")]
    pub media_url: Option<String>,
}

/// Create a service request
///
/// Registers a case (channel: the api_key's) from the spec's form fields; `attribute[<code>]`
/// answers the service's attributes (`attribute[<code>][]` for a multi-value list), added to the
/// description. The reporter's name, phone and email are sealed like any complainant's; without
/// them the case is anonymous. Answers the new request's id (its receipt code) at once.
#[utoipa::path(
    tag = "open311",
    params(("ext" = String, Path, description = "The format: `json` or `xml`.", max_length = 4, pattern = "^(json|xml)$")),
    request_body(content = CreateRequestForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The request created (JSON; XML by the extension)", content((Vec<Created> = "application/json"), (String = "text/xml")))),
    security(())
)]
#[post("/requests.{ext}")]
pub async fn create_request(state: Data<AppState>, req: HttpRequest, path: Path<String>, body: Bytes) -> HttpResponse {
    let format = match format_of(&path) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    if body.len() > 64 * 1024 {
        return one_error(format, 400, "the request body is larger than 64 KiB");
    }
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return one_error(format, 400, "the body must be application/x-www-form-urlencoded");
    };
    let field =
        |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned()).filter(|v| !v.is_empty());
    let (channel, poster) = match key_channel(&state, format, field("api_key").as_deref()).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Some(code) = field("service_code") else {
        return one_error(format, 400, "service_code is required");
    };
    let category = match state.reference.category_by_code(&code).await {
        Ok(Some(c)) if c.active => c,
        Ok(_) => return one_error(format, 404, "service_code not found"),
        Err(e) => return from_api(format, &e.into()),
    };
    let mut problems = Vec::new();
    let number = |name: &str, problems: &mut Vec<(u16, String)>| match field(name) {
        None => None,
        Some(v) => match v.parse::<f64>() {
            Ok(x) if x.is_finite() => Some(x),
            _ => {
                problems.push((400, format!("{name} must be a number")));
                None
            }
        },
    };
    let (lat, long) = (number("lat", &mut problems), number("long", &mut problems));
    let address = field("address_string");
    if (lat.is_none() || long.is_none()) && address.is_none() && problems.is_empty() {
        problems.push((400, "give lat and long, or address_string".to_owned()));
    }
    let description = field("description");
    if description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        problems.push((400, format!("description is limited to {MAX_DESCRIPTION} characters")));
    }
    let answers: Vec<(String, String)> = pairs
        .iter()
        .filter_map(|(k, v)| {
            let code = k.strip_prefix("attribute[")?;
            let code = code.strip_suffix("][]").or_else(|| code.strip_suffix(']'))?;
            Some((code.to_owned(), v.clone()))
        })
        .collect();
    let attrs: Vec<ServiceAttribute> = serde_json::from_value(category.attributes.clone()).unwrap_or_default();
    let lines = match check_answers(&attrs, &answers) {
        Ok(l) => l,
        Err(e) => {
            problems.extend(e);
            Vec::new()
        }
    };
    if !problems.is_empty() {
        return errors(format, 400, problems);
    }
    let mut text = description.clone().unwrap_or_else(|| category.name.clone());
    if !lines.is_empty() {
        text.push_str("\n\n");
        text.push_str(&lines.join("\n"));
    }
    if let Some(url) = field("media_url") {
        text.push_str("\n\n图片：");
        text.push_str(&url.chars().take(500).collect::<String>());
    }
    let summary: String = description.as_deref().unwrap_or_default().chars().take(30).collect();
    let title =
        if summary.trim().is_empty() { category.name.clone() } else { format!("{}：{}", category.name, summary) };
    let name = match (field("last_name"), field("first_name")) {
        (None, None) => None,
        (l, f) => Some(format!("{}{}", l.unwrap_or_default(), f.unwrap_or_default())),
    };
    let (phone, email) = (field("phone"), field("email"));
    let anonymous = name.is_none() && phone.is_none() && email.is_none();
    let Ok(channel) = serde_json::from_value::<crate::dto::Channel>(serde_json::Value::String(channel)) else {
        return one_error(format, 400, "the api_key's channel is unknown");
    };
    let reg = RegisterCaseRequest {
        channel,
        kind: crate::dto::CaseKind::Complaint,
        title,
        description: text,
        category_id: Some(category.id.as_uuid()),
        village_id: None,
        accused_unit_id: None,
        urgency: None,
        received_at: None,
        complainant: Some(crate::dto::ComplainantInput { name, phone, email, id_number: None, anonymous }),
        accept: false,
        notice: None,
        contact_card_serial: None,
        location: Some(crate::dto::LocationInput { address, lat, long }),
    };
    let mut meta = crate::citizen::citizen_meta(crate::middleware::request_id(&req));
    // Recorded as the registration's actor: the key reads back what it posted, and only that.
    if let Ok(actor) = domain::ActorId::parse(poster) {
        meta.principal.id = actor;
    }
    match crate::service::register_unkeyed(&state, &meta, &reg, None).await {
        Ok(case) => {
            let created = Created {
                service_request_id: case.receipt_code.as_str().to_owned(),
                service_notice: Some("已登记，受理后 60 日内答复；凭受理编号查询办理进度。".into()),
                account_id: None,
            };
            reply(format, StatusCode::OK, &vec![created.clone()], &CreatedList { request: vec![created] })
                .unwrap_or_else(|e| from_api(format, &e))
        }
        Err(e) => from_api(format, &e),
    }
}

/// Registers the routes (under `/open311/v2`).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(discovery)
        .service(services)
        .service(service_definition)
        .service(list_requests)
        .service(get_request)
        .service(create_request);
}
