//! Open311 GeoReport v2 (<http://wiki.open311.org/GeoReport_v2>): the shapes of its answers in
//! JSON and XML, its error format, the attribute definitions of a category, and how a case maps
//! onto a service request. The routes are in [`crate::routes::open311`].
//!
//! State mapping (`status`): a case is `closed` once it is closed (办结, withdrawn included) or
//! not accepted (不予受理); every other status (received, assigned, handled, fed back and
//! waiting for the rating) is `open`. `status_notes` is the latest step of the public timeline
//! in words, with the reply once there is one; `agency_responsible` the unit handling it;
//! `expected_datetime` the overall limit from acceptance (60 days by default) while it runs;
//! `updated_datetime` the time of the case's last event (its closing, once closed).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::problem::{ApiError, FieldError};

/// A response format, from the path's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.json`: `application/json; charset=utf-8`.
    Json,
    /// `.xml`: `text/xml; charset=utf-8`.
    Xml,
}

impl Format {
    /// The format of an extension, if it is one the spec defines.
    pub fn parse(ext: &str) -> Option<Self> {
        match ext {
            "json" => Some(Self::Json),
            "xml" => Some(Self::Xml),
            _ => None,
        }
    }

    /// The media type it is served as.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json; charset=utf-8",
            Self::Xml => "text/xml; charset=utf-8",
        }
    }
}

/// An attribute's data type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Datatype {
    String,
    Number,
    Datetime,
    Text,
    Singlevaluelist,
    Multivaluelist,
}

/// A value of a list attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeValue {
    /// What is sent: 1 to 50 characters.
    #[schema(min_length = 1, max_length = 50, pattern = r"^[A-Za-z0-9_.-]+$")]
    pub key: String,
    /// What is shown: 1 to 100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
}

/// An extra field a category asks for (Open311 service definition attribute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"variable": true, "code": "pole_number", "datatype": "string", "required": false,
    "datatype_description": "路灯杆上的编号", "order": 1, "description": "路灯杆编号", "values": []}))]
pub struct ServiceAttribute {
    /// `true`: the client asks the user; `false`: shown for information only.
    pub variable: bool,
    /// Its code (`attribute[<code>]` in a POST): 1 to 50 characters of letters, digits, `_`, `-`;
    /// unique within the category.
    #[schema(min_length = 1, max_length = 50, pattern = r"^[A-Za-z0-9_-]+$")]
    pub code: String,
    /// Its data type.
    pub datatype: Datatype,
    /// Whether a request must give it.
    pub required: bool,
    /// How to fill it in: at most 200 printable characters (blank: none).
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub datatype_description: Option<String>,
    /// Its place in the form (1 to 1000, unique within the category).
    #[schema(minimum = 1, maximum = 1000)]
    pub order: u32,
    /// The question asked: 1 to 200 characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub description: String,
    /// For list types (`singlevaluelist`, `multivaluelist`) the values, at least one and at most
    /// 50, their keys unique; empty for the other types.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub values: Vec<AttributeValue>,
}

/// Checks a category's attribute definitions: codes and orders unique, lists with values and
/// other types without, texts within their limits.
pub fn check_attributes(attrs: &[ServiceAttribute]) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let mut push = |i: usize, f: &str, m: &str| {
        errors.push(FieldError { field: format!("attributes[{i}].{f}"), message: m.into() });
    };
    if attrs.len() > 20 {
        return Err(ApiError::Validation(vec![FieldError {
            field: "attributes".into(),
            message: "at most 20 attributes".into(),
        }]));
    }
    let mut codes = std::collections::HashSet::new();
    let mut orders = std::collections::HashSet::new();
    for (i, a) in attrs.iter().enumerate() {
        let code_ok = (1..=50).contains(&a.code.len())
            && a.code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !code_ok {
            push(i, "code", "1 to 50 characters of letters, digits, _ and -");
        } else if !codes.insert(a.code.clone()) {
            push(i, "code", "each code once");
        }
        if !(1..=1000).contains(&a.order) || !orders.insert(a.order) {
            push(i, "order", "1 to 1000, each order once");
        }
        if domain::is_blank(&a.description)
            || a.description.chars().count() > 200
            || a.description.chars().any(char::is_control)
        {
            push(i, "description", "1 to 200 printable characters");
        }
        if a.datatype_description.as_ref().is_some_and(|d| d.chars().count() > 200 || d.chars().any(char::is_control)) {
            push(i, "datatype_description", "at most 200 printable characters");
        }
        let list = matches!(a.datatype, Datatype::Singlevaluelist | Datatype::Multivaluelist);
        if list && a.values.is_empty() {
            push(i, "values", "a list type names its values");
        }
        if !list && !a.values.is_empty() {
            push(i, "values", "only list types have values");
        }
        if a.values.len() > 50 {
            push(i, "values", "at most 50 values");
        }
        let mut keys = std::collections::HashSet::new();
        for v in &a.values {
            let key_ok = (1..=50).contains(&v.key.len())
                && v.key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                && keys.insert(v.key.clone());
            let name_ok =
                !domain::is_blank(&v.name) && v.name.chars().count() <= 100 && !v.name.chars().any(char::is_control);
            if !key_ok || !name_ok {
                push(i, "values", "keys unique, 1 to 50 of letters, digits, _ . -; names 1 to 100 characters");
                break;
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(ApiError::Validation(errors)) }
}

/// Checks the answers a request gives against its category's attributes: every required one
/// given, list answers among the values, numbers numeric, datetimes ISO 8601, no unknown codes.
/// Returns the answers as `description: value` lines to add to the case's description, in the
/// attributes' order. Errors are Open311 `(code, description)` pairs.
pub fn check_answers(
    attrs: &[ServiceAttribute],
    given: &[(String, String)],
) -> Result<Vec<String>, Vec<(u16, String)>> {
    let mut errors = Vec::new();
    for (code, _) in given {
        if !attrs.iter().any(|a| &a.code == code) {
            errors.push((400, format!("attribute[{code}] is not defined for this service")));
        }
    }
    let mut ordered: Vec<&ServiceAttribute> = attrs.iter().filter(|a| a.variable).collect();
    ordered.sort_by_key(|a| a.order);
    let mut lines = Vec::new();
    for a in ordered {
        let values: Vec<&str> =
            given.iter().filter(|(c, _)| c == &a.code).map(|(_, v)| v.trim()).filter(|v| !v.is_empty()).collect();
        if values.is_empty() {
            if a.required {
                errors.push((400, format!("attribute[{}] is required", a.code)));
            }
            continue;
        }
        if values.len() > 1 && a.datatype != Datatype::Multivaluelist {
            errors.push((400, format!("attribute[{}] takes one value", a.code)));
            continue;
        }
        let ok = values.iter().all(|v| match a.datatype {
            Datatype::Number => v.parse::<f64>().is_ok_and(f64::is_finite),
            Datatype::Datetime => DateTime::parse_from_rfc3339(v).is_ok(),
            Datatype::Singlevaluelist | Datatype::Multivaluelist => a.values.iter().any(|x| x.key == *v),
            Datatype::String | Datatype::Text => {
                v.chars().count() <= 1000 && !v.chars().any(|c| c.is_control() && c != '\n')
            }
        });
        if !ok {
            errors.push((400, format!("attribute[{}] is not a valid {}", a.code, datatype_name(a.datatype))));
            continue;
        }
        let shown: Vec<String> = values
            .iter()
            .map(|v| a.values.iter().find(|x| x.key == *v).map_or_else(|| (*v).to_owned(), |x| x.name.clone()))
            .collect();
        lines.push(format!("{}：{}", a.description, shown.join("、")));
    }
    if errors.is_empty() { Ok(lines) } else { Err(errors) }
}

fn datatype_name(d: Datatype) -> &'static str {
    match d {
        Datatype::String => "string",
        Datatype::Number => "number",
        Datatype::Datetime => "datetime",
        Datatype::Text => "text",
        Datatype::Singlevaluelist => "value of the list",
        Datatype::Multivaluelist => "list of values",
    }
}

/// A time as the spec writes it: W3C ISO 8601 with the offset (China Standard Time).
pub fn w3c(t: DateTime<Utc>) -> String {
    t.with_timezone(&domain::calendar::china_offset()).to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// `GET discovery.json` (in JSON, `formats` is a plain list).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DiscoveryJson {
    /// When this document last changed.
    pub changeset: String,
    /// Who to contact.
    pub contact: String,
    /// How to get an api_key.
    pub key_service: String,
    /// The endpoints.
    pub endpoints: Vec<DiscoveryEndpointJson>,
}

/// One endpoint of the discovery, in JSON.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DiscoveryEndpointJson {
    /// `http://wiki.open311.org/GeoReport_v2`.
    pub specification: String,
    /// Its base URL.
    pub url: String,
    /// When it last changed.
    pub changeset: String,
    /// `production` or `test`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The media types served.
    pub formats: Vec<String>,
}

impl From<&Discovery> for DiscoveryJson {
    fn from(d: &Discovery) -> Self {
        Self {
            changeset: d.changeset.clone(),
            contact: d.contact.clone(),
            key_service: d.key_service.clone(),
            endpoints: d
                .endpoints
                .endpoint
                .iter()
                .map(|e| DiscoveryEndpointJson {
                    specification: e.specification.clone(),
                    url: e.url.clone(),
                    changeset: e.changeset.clone(),
                    type_: e.type_.clone(),
                    formats: e.formats.format.clone(),
                })
                .collect(),
        }
    }
}

/// `GET discovery.xml`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename = "discovery")]
pub struct Discovery {
    /// When this document last changed.
    pub changeset: String,
    /// Who to contact.
    pub contact: String,
    /// How to get an api_key.
    pub key_service: String,
    /// The endpoints.
    pub endpoints: Endpoints,
}

/// The discovery's endpoints.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoints {
    /// Each endpoint.
    pub endpoint: Vec<DiscoveryEndpoint>,
}

/// One endpoint of the discovery.
#[derive(Debug, Clone, Serialize)]
pub struct DiscoveryEndpoint {
    /// `http://wiki.open311.org/GeoReport_v2`.
    pub specification: String,
    /// Its base URL.
    pub url: String,
    /// When it last changed.
    pub changeset: String,
    /// `production` or `test`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The formats served.
    pub formats: Formats,
}

/// The formats of an endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Formats {
    /// Media types.
    pub format: Vec<String>,
}

/// A service (a category).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Service {
    /// The category's code.
    pub service_code: String,
    /// Its name.
    pub service_name: String,
    /// What it is for.
    pub description: String,
    /// Whether it has attributes (`GET services/{code}` lists them).
    pub metadata: bool,
    /// Always `realtime`: a request gets its id at once.
    #[serde(rename = "type")]
    pub type_: String,
    /// Keywords (its code's parts).
    pub keywords: String,
    /// The kind of case it is for, if only one.
    pub group: String,
}

/// `GET services` (XML root `services`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename = "services")]
pub struct Services {
    /// Each service.
    pub service: Vec<Service>,
}

/// `GET services/{code}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename = "service_definition")]
pub struct ServiceDefinition {
    /// The service.
    pub service_code: String,
    /// Its attributes, in order.
    pub attributes: Vec<ServiceAttribute>,
}

/// The XML shape of a service definition (`attributes/attribute`, `values/value`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename = "service_definition")]
pub struct ServiceDefinitionXml {
    service_code: String,
    attributes: AttributesXml,
}

#[derive(Debug, Clone, Serialize)]
struct AttributesXml {
    attribute: Vec<AttributeXml>,
}

#[derive(Debug, Clone, Serialize)]
struct AttributeXml {
    variable: bool,
    code: String,
    datatype: Datatype,
    required: bool,
    datatype_description: Option<String>,
    order: u32,
    description: String,
    values: ValuesXml,
}

#[derive(Debug, Clone, Serialize)]
struct ValuesXml {
    value: Vec<AttributeValue>,
}

impl From<&ServiceDefinition> for ServiceDefinitionXml {
    fn from(d: &ServiceDefinition) -> Self {
        Self {
            service_code: d.service_code.clone(),
            attributes: AttributesXml {
                attribute: d
                    .attributes
                    .iter()
                    .map(|a| AttributeXml {
                        variable: a.variable,
                        code: a.code.clone(),
                        datatype: a.datatype,
                        required: a.required,
                        datatype_description: a.datatype_description.clone(),
                        order: a.order,
                        description: a.description.clone(),
                        values: ValuesXml { value: a.values.clone() },
                    })
                    .collect(),
            },
        }
    }
}

/// A service request (a case), as `GET requests` and `GET requests/{id}` answer it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename = "request")]
pub struct ServiceRequest {
    /// The receipt code.
    pub service_request_id: String,
    /// `open` or `closed`.
    pub status: String,
    /// The latest public step in words, with the reply once there is one.
    pub status_notes: Option<String>,
    /// The category's name.
    pub service_name: Option<String>,
    /// The category's code.
    pub service_code: Option<String>,
    /// What was reported.
    pub description: Option<String>,
    /// The unit handling it.
    pub agency_responsible: Option<String>,
    /// What the reporter should know.
    pub service_notice: Option<String>,
    /// When it was received (W3C, with the offset).
    pub requested_datetime: String,
    /// When it last changed (its closing, once closed).
    pub updated_datetime: String,
    /// When the answer is due, while the overall limit runs.
    pub expected_datetime: Option<String>,
    /// The address given.
    pub address: Option<String>,
    /// Not used (always empty).
    pub address_id: Option<String>,
    /// Not used (always empty).
    pub zipcode: Option<String>,
    /// Latitude (WGS 84).
    pub lat: Option<f64>,
    /// Longitude (WGS 84).
    pub long: Option<f64>,
    /// Not kept (always empty): a photo's URL is added to the description.
    pub media_url: Option<String>,
}

/// `GET requests` (XML root `service_requests`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename = "service_requests")]
pub struct ServiceRequests {
    /// Each request.
    pub request: Vec<ServiceRequest>,
}

/// What `POST requests` answers for the request it created.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename = "request")]
pub struct Created {
    /// The receipt code.
    pub service_request_id: String,
    /// What happens next.
    pub service_notice: Option<String>,
    /// Not used (always empty).
    pub account_id: Option<String>,
}

/// `POST requests` (XML root `service_requests`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename = "service_requests")]
pub struct CreatedList {
    /// The one request created.
    pub request: Vec<Created>,
}

/// One error of the spec's format.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename = "error")]
pub struct Open311Error {
    /// The HTTP status it goes with, mostly.
    pub code: u16,
    /// What went wrong, for the user.
    pub description: String,
}

/// The spec's error list (XML root `errors`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename = "errors")]
pub struct Errors {
    /// Each error.
    pub error: Vec<Open311Error>,
}

/// Serialises to XML with the declaration the spec asks for.
pub fn to_xml<T: Serialize>(v: &T) -> Result<String, ApiError> {
    let body = quick_xml::se::to_string(v).map_err(ApiError::internal)?;
    Ok(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"))
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn attr(code: &str, datatype: Datatype, required: bool, order: u32, values: &[(&str, &str)]) -> ServiceAttribute {
        ServiceAttribute {
            variable: true,
            code: code.into(),
            datatype,
            required,
            datatype_description: None,
            order,
            description: format!("问题{order}"),
            values: values.iter().map(|(k, n)| AttributeValue { key: (*k).into(), name: (*n).into() }).collect(),
        }
    }

    #[test]
    fn answers_are_checked_against_the_definition() {
        let attrs = [
            attr("pole", Datatype::String, true, 2, &[]),
            attr("kind", Datatype::Singlevaluelist, false, 1, &[("dark", "不亮"), ("flicker", "闪烁")]),
        ];
        let ok = check_answers(&attrs, &[("pole".into(), "A-17".into()), ("kind".into(), "dark".into())]);
        assert_eq!(ok, Ok(vec!["问题1：不亮".to_owned(), "问题2：A-17".to_owned()]));
        assert!(check_answers(&attrs, &[("kind".into(), "dark".into())]).is_err(), "pole is required");
        assert!(check_answers(&attrs, &[("pole".into(), "1".into()), ("kind".into(), "x".into())]).is_err());
        assert!(check_answers(&attrs, &[("pole".into(), "1".into()), ("other".into(), "x".into())]).is_err());
    }

    #[test]
    fn xml_has_the_spec_roots() {
        let xml = to_xml(&Errors { error: vec![Open311Error { code: 403, description: "bad key".into() }] })
            .expect("serialises");
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<errors><error><code>403</code><description>bad key</description></error></errors>"
        );
    }
}
