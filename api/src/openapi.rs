//! The OpenAPI document. Paths are collected from the same `service(...)` calls that register
//! the routes (utoipa-actix-web), so the spec and the router cannot drift. [`ErrorResponses`]
//! adds the problem responses and the `Idempotency-Key` / `If-Match` headers to every operation,
//! so each handler only documents its success.

use utoipa::openapi::path::{HttpMethod, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder, Type};
use utoipa::{Modify, OpenApi as _};

use crate::dto::LedgerSortParam;
use crate::problem::{FieldError, PROBLEM_JSON, Problem};
use crate::routes::cases::MAX_IDEMPOTENCY_KEY;

/// The document's fixed parts.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Huiyin (回音) API",
        description = "Every complaint gets an answer: the case ledger (台账) of a town discipline committee's campaign. \
Cases are registered from every channel, routed to the unit responsible, handled within their time limit, answered, \
and rated by the citizen. Every step is an event in an append-only, hash-chained log.\n\n\
Authentication: a bearer JWT (`huiyin token` prints one). Errors: RFC 9457 `application/problem+json` with a stable \
`type` (`urn:huiyin:problem:<code>`). Concurrency: `ETag` / `If-Match`. Retries: `Idempotency-Key`.",
        version = "1.0.0",
        license(name = "Apache-2.0")
    ),
    // Every type the paths name by `$ref` must be a component. Types reached from a request or
    // response body are registered by utoipa itself; one used only in a query (`IntoParams`) is
    // not, and must be listed here (the `$ref` walk in tests/integration/openapi.rs and the
    // linter of `make spec-check` refuse a dangling reference).
    components(schemas(
        Problem,
        FieldError,
        LedgerSortParam,
        crate::open311::Open311Error,
        crate::routes::supervision::ItemStatus
    )),
    tags(
        (name = "cases", description = "Registering and reading cases"),
        (name = "commands", description = "The lifecycle commands: each answers the case after the command"),
        (name = "integrity", description = "Chain verification, signed checkpoints, the gap-free feed"),
        (name = "personal-data", description = "Revealing (with a recorded purpose) and erasing complainants' identities"),
        (name = "ledger", description = "The ledger (台账), the overdue view, statistics and KPIs"),
        (name = "supervision", description = "Supervision items (督办): raised by rules or by hand, answered by the unit, closed by a supervisor"),
        (name = "reference", description = "Units, categories and the working calendar"),
        (name = "health", description = "Liveness and readiness"),
        (name = "public", description = "The citizen's side, without a token: submit, follow by receipt code and secret, add information, answer, rate, withdraw (rate-limited)"),
        (name = "integrations", description = "Notice templates and outboxes, webhook endpoints, Open311 api_keys and category attributes"),
        (name = "open311", description = "Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2): JSON or XML by extension; errors are the spec's list of {code, description}"),
    )
)]
pub struct ApiDoc;

/// Adds the security scheme, the problem responses and the command headers.
pub struct ErrorResponses;

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
        .build()
        .into()
}

/// The form of `Idempotency-Key` that `routes::cases::meta` accepts: visible ASCII only.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]+$";
/// The form of `If-Match` that `service::IfMatch::parse` accepts: `*`, or a comma-separated list
/// of version tags (`"3"`, `W/"3"`). Versions are capped at nine digits here (the server takes
/// any `u32`), so a valid header always parses.
pub const IF_MATCH_PATTERN: &str = r#"^[ \t]*(\*|(W/)?"[0-9]{1,9}"([ \t]*,[ \t]*(W/)?"[0-9]{1,9}")*)[ \t]*$"#;

fn open311_errors(description: &str) -> RefOr<utoipa::openapi::Response> {
    let schema = utoipa::openapi::schema::ArrayBuilder::new().items(Ref::from_schema_name("Open311Error"));
    ResponseBuilder::new()
        .description(description)
        .content("application/json; charset=utf-8", ContentBuilder::new().schema(Some(schema)).build())
        .content("text/xml; charset=utf-8", ContentBuilder::new().build())
        .build()
        .into()
}

fn header_param(name: &str, description: &str, pattern: &str, length: Option<(usize, usize)>) -> Parameter {
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .min_length(length.map(|l| l.0))
        .max_length(length.map(|l| l.1));
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn idempotency_key(description: &str) -> Parameter {
    header_param(
        "Idempotency-Key",
        &format!("{description}. 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters (`!` to `~`)."),
        IDEMPOTENCY_KEY_PATTERN,
        Some((1, MAX_IDEMPOTENCY_KEY)),
    )
}

/// What every command's 409 may also be: the case or record kept changing while the command was
/// decided (20 attempts, `service::execute`, `records::write`).
const CONTENTION: &str = "; or `contention`: the case or record kept changing while the command was decided \
                          (retry; the command itself wrote nothing)";

/// Documents the response `code` with `generic` unless the route documents that code itself: a
/// route's own description (`campaign-finished`, `no-recipient`, …) says more than the generic
/// one, and overwriting it lost what an integrator needs to tell the refusals apart.
fn put(
    r: &mut std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>>,
    code: String,
    generic: RefOr<utoipa::openapi::Response>,
) {
    r.entry(code).or_insert(generic);
}

impl Modify for ErrorResponses {
    fn modify(&self, api: &mut OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        for (path, item) in api.paths.paths.iter_mut() {
            let public = path.starts_with("/api/v1/public") || path.starts_with("/open311/");
            let open311 = path.starts_with("/open311/");
            let api_path = path.starts_with("/api/") && !open311;
            let has_id = path.contains('{');
            let is_case_command = path.starts_with("/api/v1/cases/{id}/") && !path.ends_with("/events");
            for (method, op) in [
                (HttpMethod::Get, item.get.as_mut()),
                (HttpMethod::Post, item.post.as_mut()),
                (HttpMethod::Put, item.put.as_mut()),
                (HttpMethod::Patch, item.patch.as_mut()),
                (HttpMethod::Delete, item.delete.as_mut()),
            ] {
                let Some(op) = op else { continue };
                let r = &mut op.responses.responses;
                if open311 {
                    for (code, what) in [
                        ("400", "A parameter is missing or invalid (the spec's error list)"),
                        ("403", "Missing or invalid api_key (the spec's error list)"),
                        ("404", "No such service, request or format (the spec's error list)"),
                    ] {
                        r.insert(code.into(), open311_errors(what));
                    }
                    r.insert("429".into(), open311_errors("Too many requests from this client; see Retry-After"));
                }
                if public && !open311 {
                    put(r, "429".into(), problem("Too many requests from this client; see Retry-After"));
                }
                if api_path {
                    put(r, "400".into(), problem("Malformed request: bad path, query or header, or malformed JSON"));
                }
                if api_path && !public {
                    put(r, "401".into(), problem("Missing, invalid or expired bearer token"));
                    put(r, "403".into(), problem("The caller's role may not do this"));
                }
                if api_path {
                    put(r, "503".into(), problem("Busy or past the request deadline; retry"));
                    put(r, "500".into(), problem("Internal error (details only in the server's log)"));
                }
                if has_id && api_path {
                    put(r, "404".into(), problem("Not found, or outside the caller's scope"));
                }
                if method != HttpMethod::Get && api_path {
                    put(r, "413".into(), problem("Body larger than 64 KiB"));
                    put(r, "415".into(), problem("Body is not application/json"));
                    put(
                        r,
                        "422".into(),
                        problem("Invalid fields, unknown references, or an Idempotency-Key reused with another body"),
                    );
                    put(
                        r,
                        "409".into(),
                        problem(
                            "Refused by a rule of the case lifecycle (the `type` names the rule), or a name already \
                             taken",
                        ),
                    );
                    // Every command may lose its races until it gives up, a route with 409s of its
                    // own (`campaign-finished`, …) too.
                    if let Some(RefOr::T(conflict)) = r.get_mut("409")
                        && !conflict.description.contains("`contention`")
                    {
                        conflict.description.push_str(CONTENTION);
                    }
                }
                if path == "/api/v1/cases" && method == HttpMethod::Post {
                    op.parameters.get_or_insert_with(Vec::new).push(idempotency_key(
                        "A retry with the same key and body returns the first answer and creates nothing",
                    ));
                }
                if is_case_command && method == HttpMethod::Post {
                    put(
                        r,
                        "412".into(),
                        problem("If-Match named a version the case is no longer at; nothing was written"),
                    );
                    let params = op.parameters.get_or_insert_with(Vec::new);
                    params.push(header_param(
                        "If-Match",
                        "`*`, or the case's ETag (`\"<version>\"`, also `W/\"<version>\"`) or a comma-separated list \
                         of them: refuse with 412 unless the case is at one of them. No length limit.",
                        IF_MATCH_PATTERN,
                        None,
                    ));
                    params.push(idempotency_key("A retry with the same key and body returns the first answer"));
                }
            }
        }
    }
}

/// The whole document, built from the route registrations.
pub fn spec() -> OpenApi {
    use utoipa_actix_web::AppExt;
    let (_, api) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::routes::configure)
        .split_for_parts();
    let mut api = api;
    ErrorResponses.modify(&mut api);
    api
}

/// The document as the committed `openapi/openapi.json` holds it (pretty, with a final newline).
pub fn spec_json() -> String {
    let mut s = spec().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}
