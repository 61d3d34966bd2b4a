//! Reference data (admin): units, categories with deadline policies, the working calendar.
//! Every role may read them (frontends need the lists); only admins change them.

use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put};
use domain::{CategoryId, DeadlinePolicy, Limit, UnitId};
use infra::reference::{CalendarDay, Category, CategoryInput, Unit};
use uuid::Uuid;

use crate::auth::{Action, Principal};
use crate::dto::*;
use crate::problem::{ApiError, FieldError};
use crate::startup::AppState;

fn unit_view(u: Unit) -> UnitView {
    UnitView {
        id: u.id.as_uuid(),
        name: u.name,
        kind: u.kind.into(),
        parent_id: u.parent_id.map(|p| p.as_uuid()),
        active: u.active,
        created_at: u.created_at,
        updated_at: u.updated_at,
    }
}

fn limit_dto(l: Limit) -> LimitDto {
    match l {
        Limit::WorkingDays(v) => LimitDto { unit: LimitUnit::WorkingDays, value: v },
        Limit::Hours(v) => LimitDto { unit: LimitUnit::Hours, value: v },
        Limit::CalendarDays(v) => LimitDto { unit: LimitUnit::CalendarDays, value: v },
    }
}

fn policy_dto(p: &DeadlinePolicy) -> DeadlinePolicyDto {
    DeadlinePolicyDto {
        assign: Some(limit_dto(p.assign)),
        handle: Some(limit_dto(p.handle)),
        feedback: Some(limit_dto(p.feedback)),
        urgent_assign: Some(limit_dto(p.urgent_assign)),
        urgent_handle: Some(limit_dto(p.urgent_handle)),
        urgent_feedback: Some(limit_dto(p.urgent_feedback)),
        max_extension_days: Some(p.max_extension_days),
        max_extensions: Some(p.max_extensions),
        acknowledge: Some(limit_dto(p.acknowledge)),
        accusation_acknowledge: Some(limit_dto(p.accusation_acknowledge)),
        sign_for: Some(limit_dto(p.sign_for)),
        urgent_sign_for: Some(limit_dto(p.urgent_sign_for)),
        return_window: Some(limit_dto(p.return_window)),
        follow_up: Some(limit_dto(p.follow_up)),
        urgent_follow_up: Some(limit_dto(p.urgent_follow_up)),
        overall: Some(limit_dto(p.overall)),
    }
}

fn category_view(c: Category) -> CategoryView {
    CategoryView {
        id: c.id.as_uuid(),
        code: c.code,
        name: c.name,
        kind: c.kind.as_deref().and_then(|k| match k {
            "complaint" => Some(CaseKind::Complaint),
            "suggestion" => Some(CaseKind::Suggestion),
            "report" => Some(CaseKind::Report),
            _ => None,
        }),
        default_unit_id: c.default_unit_id.map(|u| u.as_uuid()),
        deadline_policy: policy_dto(&c.policy),
        active: c.active,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

fn field(errors: &mut Vec<FieldError>, f: &str, m: &str) {
    errors.push(FieldError { field: f.into(), message: m.into() });
}

fn name(errors: &mut Vec<FieldError>, f: &str, s: &str, max: usize) -> String {
    let t = s.trim();
    if domain::is_blank(t) || t.chars().count() > max || t.chars().any(char::is_control) {
        errors.push(FieldError { field: f.into(), message: format!("must be 1 to {max} printable characters") });
    }
    t.to_owned()
}

fn policy(errors: &mut Vec<FieldError>, dto: &DeadlinePolicyDto) -> DeadlinePolicy {
    let mut p = DeadlinePolicy::statutory_default();
    let mut limit = |f: &str, v: Option<LimitDto>, slot: &mut Limit| {
        if let Some(l) = v {
            match l.unit {
                LimitUnit::WorkingDays if (1..=60).contains(&l.value) => *slot = Limit::WorkingDays(l.value),
                LimitUnit::Hours if (1..=720).contains(&l.value) => *slot = Limit::Hours(l.value),
                LimitUnit::CalendarDays if (1..=90).contains(&l.value) => *slot = Limit::CalendarDays(l.value),
                LimitUnit::WorkingDays => {
                    field(errors, f, "working days must be 1 to 60 (the regulation's 60-day limit)")
                }
                LimitUnit::Hours => field(errors, f, "hours must be 1 to 720"),
                LimitUnit::CalendarDays => {
                    field(errors, f, "calendar days must be 1 to 90 (60 and one 30-day extension)")
                }
            }
        }
    };
    limit("deadline_policy.assign", dto.assign, &mut p.assign);
    limit("deadline_policy.handle", dto.handle, &mut p.handle);
    limit("deadline_policy.feedback", dto.feedback, &mut p.feedback);
    limit("deadline_policy.urgent_assign", dto.urgent_assign, &mut p.urgent_assign);
    limit("deadline_policy.urgent_handle", dto.urgent_handle, &mut p.urgent_handle);
    limit("deadline_policy.urgent_feedback", dto.urgent_feedback, &mut p.urgent_feedback);
    limit("deadline_policy.acknowledge", dto.acknowledge, &mut p.acknowledge);
    limit("deadline_policy.accusation_acknowledge", dto.accusation_acknowledge, &mut p.accusation_acknowledge);
    limit("deadline_policy.sign_for", dto.sign_for, &mut p.sign_for);
    limit("deadline_policy.urgent_sign_for", dto.urgent_sign_for, &mut p.urgent_sign_for);
    limit("deadline_policy.return_window", dto.return_window, &mut p.return_window);
    limit("deadline_policy.follow_up", dto.follow_up, &mut p.follow_up);
    limit("deadline_policy.urgent_follow_up", dto.urgent_follow_up, &mut p.urgent_follow_up);
    limit("deadline_policy.overall", dto.overall, &mut p.overall);
    match dto.max_extension_days {
        Some(d) if d <= 30 => p.max_extension_days = d,
        Some(_) => field(errors, "deadline_policy.max_extension_days", "must be at most 30 (信访工作条例)"),
        None => {}
    }
    match dto.max_extensions {
        Some(n) if n <= 1 => p.max_extensions = n,
        Some(_) => field(errors, "deadline_policy.max_extensions", "must be 0 or 1 (信访工作条例: once)"),
        None => {}
    }
    p
}

fn category_input(req: &CategoryRequest) -> Result<CategoryInput, ApiError> {
    let mut errors = Vec::new();
    let code = req.code.trim().to_owned();
    let code_ok = !code.is_empty()
        && code.len() <= 32
        && code.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if !code_ok {
        field(&mut errors, "code", "must be 1 to 32 of a-z 0-9 _ . - starting with a letter or digit");
    }
    let name = name(&mut errors, "name", &req.name, 100);
    let policy = policy(&mut errors, &req.deadline_policy);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(CategoryInput {
        code,
        name,
        kind: req
            .kind
            .map(|k| serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()),
        default_unit_id: req.default_unit_id.map(UnitId::from_uuid),
        policy,
        active: req.active.unwrap_or(true),
    })
}

/// List units
///
/// The town, its villages / farms / communities and the departments, active ones only unless
/// `include_inactive=true`.
#[utoipa::path(tag = "reference", params(UnitListQuery), responses((status = 200, description = "Units", body = [UnitView])), security(("bearer" = [])))]
#[get("/units")]
pub async fn list_units(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadReference)?;
    let q: UnitListQuery = crate::extract::query(&req)?;
    let units = state.reference.list_units(q.include_inactive.unwrap_or(false)).await?;
    Ok(HttpResponse::Ok().json(units.into_iter().map(unit_view).collect::<Vec<_>>()))
}

/// Query of the unit list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UnitListQuery {
    /// Include deactivated units.
    pub include_inactive: Option<bool>,
}

/// Create a unit
///
/// Adds a unit under a parent; names are unique under one parent.
#[utoipa::path(tag = "reference", request_body = CreateUnitRequest, responses((status = 201, description = "The unit", body = UnitView)), security(("bearer" = [])))]
#[post("/units")]
pub async fn create_unit(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::WriteReference)?;
    let body: CreateUnitRequest = crate::extract::json_body(&req, &body)?;
    let mut errors = Vec::new();
    let n = name(&mut errors, "name", &body.name, 100);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    // A unit is never created under one that no longer works.
    if let Some(parent) = body.parent_id {
        match state.reference.unit(UnitId::from_uuid(parent)).await? {
            Some(p) if p.active => {}
            Some(_) => return Err(ApiError::UnknownReference("parent_id: the unit is deactivated".into())),
            None => return Err(ApiError::UnknownReference("parent_id: no such unit".into())),
        }
    }
    let unit = state.reference.create_unit(&n, body.kind.into(), body.parent_id.map(UnitId::from_uuid)).await?;
    Ok(HttpResponse::Created().insert_header(("Location", format!("/api/v1/units/{}", unit.id))).json(unit_view(unit)))
}

/// Get a unit
///
/// One unit, active or not.
#[utoipa::path(tag = "reference", params(("id" = Uuid, Path, description = "The unit")), responses((status = 200, description = "The unit", body = UnitView)), security(("bearer" = [])))]
#[get("/units/{id}")]
pub async fn get_unit(state: Data<AppState>, principal: Principal, id: Path<Uuid>) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadReference)?;
    let unit = state.reference.unit(UnitId::from_uuid(*id)).await?.ok_or(ApiError::NotFound("unit"))?;
    Ok(HttpResponse::Ok().json(unit_view(unit)))
}

/// Rename a unit
///
/// Changes the name; cases keep pointing at the unit by id.
#[utoipa::path(tag = "reference", params(("id" = Uuid, Path, description = "The unit")), request_body = RenameUnitRequest, responses((status = 200, description = "The unit", body = UnitView)), security(("bearer" = [])))]
#[patch("/units/{id}")]
pub async fn rename_unit(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::WriteReference)?;
    let body: RenameUnitRequest = crate::extract::json_body(&req, &body)?;
    let mut errors = Vec::new();
    let n = name(&mut errors, "name", &body.name, 100);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let unit = state.reference.rename_unit(UnitId::from_uuid(*id), &n).await?.ok_or(ApiError::NotFound("unit"))?;
    Ok(HttpResponse::Ok().json(unit_view(unit)))
}

/// Deactivate a unit
///
/// No case can be routed to it any more, rework never goes back to it, and tokens naming it are
/// refused. While it still leads or co-handles open cases (assigned or handled) the answer is
/// 409 `unit-holds-cases` with their ids in `cases`, unless `reroute_to` names the unit they
/// are re-routed to (each by an event; a recusal anywhere refuses the whole request before
/// anything is written).
#[utoipa::path(tag = "reference", params(("id" = Uuid, Path, description = "The unit")),
    request_body(content = Option<DeactivateUnitRequest>, description = "Optional: where to re-route its open cases"),
    responses((status = 200, description = "The unit", body = UnitView)), security(("bearer" = [])))]
#[post("/units/{id}/deactivate")]
pub async fn deactivate_unit(
    state: Data<AppState>,
    principal: Principal,
    req: actix_web::HttpRequest,
    id: Path<Uuid>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::WriteReference)?;
    let body: DeactivateUnitRequest = crate::extract::optional_json_body(&body)?;
    let unit = UnitId::from_uuid(*id);
    state.reference.unit(unit).await?.ok_or(ApiError::NotFound("unit"))?;
    let meta = crate::service::RequestMeta {
        principal,
        request_id: crate::middleware::request_id(&req),
        idempotency_key: None,
        if_match: None,
    };
    let unit = crate::service::deactivate_unit(&state, &meta, unit, body.reroute_to.map(UnitId::from_uuid)).await?;
    Ok(HttpResponse::Ok().json(unit_view(unit)))
}

/// List categories
///
/// The category taxonomy with each category's deadline policy.
#[utoipa::path(tag = "reference", responses((status = 200, description = "Categories", body = [CategoryView])), security(("bearer" = [])))]
#[get("/categories")]
pub async fn list_categories(state: Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadReference)?;
    let cats = state.reference.list_categories().await?;
    Ok(HttpResponse::Ok().json(cats.into_iter().map(category_view).collect::<Vec<_>>()))
}

/// Create a category
///
/// Omitted policy fields take the statutory defaults.
#[utoipa::path(tag = "reference", request_body = CategoryRequest, responses((status = 201, description = "The category", body = CategoryView)), security(("bearer" = [])))]
#[post("/categories")]
pub async fn create_category(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::WriteReference)?;
    let body: CategoryRequest = crate::extract::json_body(&req, &body)?;
    let input = category_input(&body)?;
    let cat = state.reference.create_category(&input).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/categories/{}", cat.id)))
        .json(category_view(cat)))
}

/// Get a category
///
/// One category with its policy.
#[utoipa::path(tag = "reference", params(("id" = Uuid, Path, description = "The category")), responses((status = 200, description = "The category", body = CategoryView)), security(("bearer" = [])))]
#[get("/categories/{id}")]
pub async fn get_category(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadReference)?;
    let cat = state.reference.category(CategoryId::from_uuid(*id)).await?.ok_or(ApiError::NotFound("category"))?;
    Ok(HttpResponse::Ok().json(category_view(cat)))
}

/// Update a category
///
/// Replaces the category's fields. Deadlines of existing cases never change: each case
/// recorded its deadlines and their rules when they started.
#[utoipa::path(tag = "reference", params(("id" = Uuid, Path, description = "The category")), request_body = CategoryRequest, responses((status = 200, description = "The category", body = CategoryView)), security(("bearer" = [])))]
#[put("/categories/{id}")]
pub async fn update_category(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::WriteReference)?;
    let body: CategoryRequest = crate::extract::json_body(&req, &body)?;
    let input = category_input(&body)?;
    let cat = state
        .reference
        .update_category(CategoryId::from_uuid(*id), &input)
        .await?
        .ok_or(ApiError::NotFound("category"))?;
    Ok(HttpResponse::Ok().json(category_view(cat)))
}

fn year(y: i32) -> Result<i32, ApiError> {
    // The years the service takes anywhere (client times lie in 2000–2099; V10's check).
    if (2000..=2099).contains(&y) {
        Ok(y)
    } else {
        Err(ApiError::BadRequest { code: "invalid-path", detail: "year must be 2000 to 2099".into() })
    }
}

/// Get a year's working calendar
///
/// Public holidays and make-up working days (调休) of a year; every other Monday–Friday is a
/// working day. 404 when the year's calendar is not loaded: deadlines running into it are
/// counted on weekdays alone and flagged `calendar_incomplete` until it is.
#[utoipa::path(tag = "reference", params(("year" = i32, Path, description = "The year", minimum = 2000, maximum = 2099)), responses((status = 200, description = "The calendar", body = CalendarYear), (status = 404, description = "The year's calendar is not loaded", content_type = "application/problem+json", body = crate::problem::Problem)), security(("bearer" = [])))]
#[get("/calendar/{year}")]
pub async fn get_calendar(state: Data<AppState>, principal: Principal, y: Path<i32>) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadReference)?;
    let days = state.reference.calendar_year(year(*y)?).await?.ok_or(ApiError::NotFound("calendar year"))?;
    let (mut holidays, mut makeup_workdays) = (Vec::new(), Vec::new());
    for d in days {
        let dto = CalendarDayDto { date: d.day, name: d.name };
        if d.workday { makeup_workdays.push(dto) } else { holidays.push(dto) }
    }
    Ok(HttpResponse::Ok().json(CalendarYear { holidays, makeup_workdays }))
}

/// Replace a year's working calendar
///
/// Replaces all holidays and make-up working days of the year; the year counts as loaded. New
/// deadlines use it at once; every open working-day deadline it moves (one counted on weekdays
/// alone into this year, `calendar_incomplete`, or one running through a corrected year) is
/// recomputed, each by a `case.deadlines_recomputed` event, in the background right after the
/// answer (seconds for thousands of open cases; the views show the old deadline, flagged, until
/// then).
#[utoipa::path(tag = "reference", params(("year" = i32, Path, description = "The year", minimum = 2000, maximum = 2099)), request_body = CalendarYear, responses((status = 200, description = "The calendar", body = CalendarYear)), security(("bearer" = [])))]
#[put("/calendar/{year}")]
pub async fn put_calendar(
    state: Data<AppState>,
    principal: Principal,
    y: Path<i32>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::WriteReference)?;
    let body: CalendarYear = crate::extract::json_body(&req, &body)?;
    let y = year(*y)?;
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut days = Vec::new();
    for (list, workday, f) in [(&body.holidays, false, "holidays"), (&body.makeup_workdays, true, "makeup_workdays")] {
        if list.len() > 100 {
            field(&mut errors, f, "at most 100 days");
        }
        for d in list {
            use chrono::Datelike;
            if d.date.year() != y {
                field(&mut errors, f, "every date must lie in the year of the path");
            }
            if !seen.insert(d.date) {
                field(&mut errors, f, "a date appears twice");
            }
            // 调休: a make-up working day is a Saturday or Sunday worked instead of a holiday.
            if workday && !matches!(d.date.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun) {
                field(&mut errors, f, "a make-up working day must be a Saturday or a Sunday");
            }
            let n = name(&mut errors, f, &d.name, 50);
            days.push(CalendarDay { day: d.date, workday, name: n });
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    state.reference.put_calendar_year(y, &days).await?;
    // The recount runs in the background (a reviewer's PUT with 1 623 open cases took 15 s
    // inline, and a correction ran past the request deadline).
    state.calendar_changed.notify_one();
    Ok(HttpResponse::Ok().json(body))
}

fn rule_view(r: infra::reference::RoutingRule) -> RoutingRuleView {
    RoutingRuleView {
        id: r.id,
        category_id: r.category_id.as_uuid(),
        village_id: r.village_id.map(|v| v.as_uuid()),
        unit_id: r.unit_id.as_uuid(),
        tier: r.tier.into(),
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// List routing rules (归口)
///
/// Where cases of each category (and village) go by default.
#[utoipa::path(tag = "reference", responses((status = 200, description = "The rules", body = [RoutingRuleView])), security(("bearer" = [])))]
#[get("/routing-rules")]
pub async fn list_routing_rules(state: Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadReference)?;
    let rules = state.reference.list_routing_rules().await?;
    Ok(HttpResponse::Ok().json(rules.into_iter().map(rule_view).collect::<Vec<_>>()))
}

/// Set a routing rule (归口)
///
/// Creates or replaces the rule of a category, for one village or category-wide. Registration
/// then proposes the route, and an assignment without a unit applies it; the village's rule
/// comes before the category-wide one, which comes before the category's default unit.
#[utoipa::path(tag = "reference", request_body = RoutingRuleRequest, responses((status = 200, description = "The rule", body = RoutingRuleView)), security(("bearer" = [])))]
#[put("/routing-rules")]
pub async fn put_routing_rule(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::WriteReference)?;
    let body: RoutingRuleRequest = crate::extract::json_body(&req, &body)?;
    let b = body;
    let category = state
        .reference
        .category(CategoryId::from_uuid(b.category_id))
        .await?
        .ok_or_else(|| ApiError::UnknownReference("category_id: no such category".into()))?;
    let unit = state
        .reference
        .unit(UnitId::from_uuid(b.unit_id))
        .await?
        .filter(|u| u.active)
        .ok_or_else(|| ApiError::UnknownReference("unit_id: no such active unit".into()))?;
    if let Some(v) = b.village_id {
        let village = state.reference.unit(UnitId::from_uuid(v)).await?;
        if !village.is_some_and(|v| infra::reference::tier_of(v.kind) == domain::Tier::Village) {
            return Err(ApiError::UnknownReference("village_id: no such village, farm or community".into()));
        }
    }
    let tier = infra::reference::tier_of(unit.kind);
    if b.tier.is_some_and(|t| domain::Tier::from(t) != tier) {
        return Err(ApiError::Validation(vec![FieldError {
            field: "tier".into(),
            message: "must be the unit's own tier: village for a village, farm or community, town otherwise".into(),
        }]));
    }
    let rule =
        state.reference.put_routing_rule(category.id, b.village_id.map(UnitId::from_uuid), unit.id, tier).await?;
    Ok(HttpResponse::Ok().json(rule_view(rule)))
}

/// Delete a routing rule
///
/// Cases already routed keep their unit.
#[utoipa::path(tag = "reference", params(("id" = Uuid, Path, description = "The rule")), responses((status = 204, description = "Deleted")), security(("bearer" = [])))]
#[delete("/routing-rules/{id}")]
pub async fn delete_routing_rule(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::WriteReference)?;
    if state.reference.delete_routing_rule(*id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound("routing rule"))
    }
}

/// Registers the routes (under `/api/v1`).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_units)
        .service(create_unit)
        .service(get_unit)
        .service(rename_unit)
        .service(deactivate_unit)
        .service(list_categories)
        .service(create_category)
        .service(get_category)
        .service(update_category)
        .service(get_calendar)
        .service(put_calendar)
        .service(list_routing_rules)
        .service(put_routing_rule)
        .service(delete_routing_rule);
}
