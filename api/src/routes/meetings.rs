//! `/api/v1/meetings`: symposium meetings (座谈会) and the opinions raised there, registered as
//! cases in one request, atomically, each linked to the meeting with its number in the minutes.

use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse, get, post};
use chrono::{NaiveDate, TimeZone, Utc};
use domain::records::meeting::{self, Attendance, AttendeeType, Meeting, MeetingEvent};
use domain::records::{CaseSource, SourceType};
use domain::{Name, Text, Title, UnitId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::records::{RecordAsOfQuery, RecordListQuery, RecordPage, RecordView, happened_day};
use crate::auth::{Action, Principal};
use crate::dto::{CaseKind, Channel, ComplainantInput, RegisterCaseRequest, Urgency};
use crate::extract::json_body;
use crate::middleware::within_deadline;
use crate::problem::{ApiError, FieldError};
use crate::records::{self, Decided};
use crate::routes::cases::meta;
use crate::service::Fields;
use crate::startup::AppState;

/// The most opinions one request registers.
pub const MAX_OPINIONS: usize = 100;

/// A type of representative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttendeeTypeName {
    /// 人大代表.
    NpcDeputy,
    /// 政协委员.
    CppccMember,
    /// 行风监督员.
    ConductSupervisor,
    /// 村民代表.
    VillagerRepresentative,
    /// 其他.
    Other,
}

impl From<AttendeeTypeName> for AttendeeType {
    fn from(t: AttendeeTypeName) -> Self {
        match t {
            AttendeeTypeName::NpcDeputy => Self::NpcDeputy,
            AttendeeTypeName::CppccMember => Self::CppccMember,
            AttendeeTypeName::ConductSupervisor => Self::ConductSupervisor,
            AttendeeTypeName::VillagerRepresentative => Self::VillagerRepresentative,
            AttendeeTypeName::Other => Self::Other,
        }
    }
}

/// How many of one type came.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttendanceInput {
    /// The type (each at most once per meeting).
    #[serde(rename = "type")]
    pub attendee_type: AttendeeTypeName,
    /// How many (0 to 1000).
    #[schema(minimum = 0, maximum = 1000, format = Int32)]
    pub count: u32,
}

/// Records a symposium meeting.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "topic": "惠民政策落实情况座谈会", "held_on": "2026-04-10", "venue": "村委会会议室",
    "host_unit_id": "00000000-0000-0000-0000-000000000002", "chair": "李书记", "recorder": "王干事",
    "attendance": [{"type": "npc_deputy", "count": 3}, {"type": "villager_representative", "count": 20}],
    "minutes": "会议听取了……"
}))]
pub struct MeetingRequest {
    /// The topic: 1 to 200 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub topic: String,
    /// The day it was held, 2000-01-01 to today (China Standard Time; a later day is 422
    /// `date-in-future`); with `campaign_id`, a day of the campaign's phases and a host unit
    /// taking part (422 `outside-campaign`).
    #[schema(value_type = String, format = Date, pattern = r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$", example = "2026-04-10")]
    pub held_on: NaiveDate,
    /// Where: 1 to 100 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub venue: String,
    /// The unit that hosted it (an active unit).
    pub host_unit_id: Uuid,
    /// The campaign it belongs to.
    pub campaign_id: Option<Uuid>,
    /// Who chaired it: 1 to 100 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub chair: String,
    /// Who kept the minutes: 1 to 100 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub recorder: String,
    /// Who came, by type. The campaign asks for 20–30 representatives: outside that the meeting
    /// is recorded with the warning `attendance_outside_20_30`.
    #[schema(min_items = 1, max_items = 5)]
    pub attendance: Vec<AttendanceInput>,
    /// The minutes (纪要): 1 to 5000 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub minutes: Option<String>,
}

/// One opinion raised at the meeting, to register as a case (channel `symposium`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpinionInput {
    /// Its number in the minutes (1 to 10000); the next free number when absent. A number the
    /// meeting already has is 422 `opinion-number-taken`.
    #[schema(minimum = 1, maximum = 10000, format = Int32)]
    pub number: Option<u32>,
    /// Complaint, suggestion or report.
    pub kind: CaseKind,
    /// A short title: 1 to 200 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub title: String,
    /// What was said: 1 to 5000 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub description: String,
    /// The category, if known.
    pub category_id: Option<Uuid>,
    /// The village it concerns.
    pub village_id: Option<Uuid>,
    /// The unit it accuses (检举控告); see registering a case.
    pub accused_unit_id: Option<Uuid>,
    /// Defaults to `normal`.
    pub urgency: Option<Urgency>,
    /// Who raised it (anonymous when absent).
    pub complainant: Option<ComplainantInput>,
}

/// Registers opinions raised at a meeting as cases, all or none.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"opinions": [
    {"kind": "complaint", "title": "低保评定不公开", "description": "本村低保评定没有张榜公示。"},
    {"kind": "suggestion", "title": "路灯维修", "description": "村口路灯坏了三个月。", "number": 2}
]}))]
pub struct OpinionsRequest {
    /// The opinions (1 to 100).
    #[schema(min_items = 1, max_items = 100)]
    pub opinions: Vec<OpinionInput>,
}

fn warnings(m: &Meeting) -> Vec<String> {
    if m.attendance_outside_recommended() { vec!["attendance_outside_20_30".into()] } else { Vec::new() }
}

async fn view(state: &AppState, principal: &Principal, m: &Meeting) -> Result<RecordView, ApiError> {
    view_at(state, principal, m, None).await
}

async fn view_at(
    state: &AppState,
    principal: &Principal,
    m: &Meeting,
    as_of: Option<chrono::DateTime<Utc>>,
) -> Result<RecordView, ApiError> {
    RecordView::at(state, principal, m.id.as_uuid(), m.version, m, warnings(m), as_of).await
}

/// Names an opinion's field errors by its place in the request.
fn within(i: usize, e: ApiError) -> ApiError {
    let prefix = |f: &str| if f.is_empty() { format!("opinions[{i}]") } else { format!("opinions[{i}].{f}") };
    match e {
        ApiError::Validation(fields) => ApiError::Validation(
            fields.into_iter().map(|f| FieldError { field: prefix(&f.field), message: f.message }).collect(),
        ),
        ApiError::Domain(domain::DomainError::Invalid(v)) => {
            ApiError::Validation(vec![FieldError { field: prefix(v.field), message: v.message.into() }])
        }
        ApiError::UnknownReference(m) => ApiError::UnknownReference(format!("opinions[{i}].{m}")),
        other => other,
    }
}

/// Checks the campaign a record names: a campaign the caller may read (else 422
/// `unknown-reference`), whose phases hold the record's day and in which its unit takes part
/// (else 422 `outside-campaign`, naming `what`), so that the cases it brings are the campaign's;
/// and whose summary report is not frozen yet (else 409 `campaign-finished`).
pub async fn check_campaign(
    state: &AppState,
    principal: &Principal,
    id: Option<Uuid>,
    day: NaiveDate,
    units: &[UnitId],
    what: &'static str,
) -> Result<Option<domain::RecordId>, ApiError> {
    let Some(id) = id else { return Ok(None) };
    match records::load::<domain::records::campaign::Campaign>(state, principal, id, None).await {
        Ok((c, _)) if c.phase_on(day).is_some() && units.iter().all(|u| c.includes(*u)) => {
            // Its printed report stands for every record of it.
            if infra::report::frozen_count(&state.pool, id).await? > 0 {
                return Err(domain::records::RecordError::CampaignFinished.into());
            }
            Ok(Some(c.id))
        }
        Ok(_) => Err(domain::records::RecordError::OutsideCampaign(what).into()),
        Err(ApiError::NotFound(_)) => Err(ApiError::UnknownReference("campaign_id names no campaign".into())),
        Err(e) => Err(e),
    }
}

/// The moment a case raised on `day` is received: 09:00 China Standard Time that day, or now
/// when that is later (a meeting held today).
pub fn received_on(day: NaiveDate) -> chrono::DateTime<Utc> {
    let now = crate::service::now();
    day.and_hms_opt(9, 0, 0)
        .and_then(|t| domain::calendar::china_offset().from_local_datetime(&t).single())
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| *t < now)
        .unwrap_or(now)
}

/// Record a symposium meeting
///
/// Records a meeting: topic, day, venue, host unit, campaign, chair and recorder, attendance by
/// type, minutes. An attendance outside 20–30 is recorded with the warning
/// `attendance_outside_20_30`. Clerks and supervisors.
#[utoipa::path(tag = "meetings", request_body = MeetingRequest, responses(
    (status = 201, description = "The meeting", body = RecordView),
    (status = 409, description = "`campaign-finished`: the campaign's summary report is frozen; nothing more joins it", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 422, description = "A field is invalid, or a unit or campaign unknown", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/meetings")]
pub async fn record_meeting(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::RecordActivity)?;
    let body: MeetingRequest = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    let v = within_deadline(&req, async {
        let mut f = Fields::default();
        let topic = f.take("topic", Title::parse(&body.topic));
        let venue = f.take("venue", Name::parse(&body.venue));
        let chair = f.take("chair", Name::parse(&body.chair));
        let recorder = f.take("recorder", Name::parse(&body.recorder));
        let minutes = body.minutes.as_ref().and_then(|m| f.take("minutes", Text::parse(m)));
        let mut seen = std::collections::BTreeSet::new();
        for (i, a) in body.attendance.iter().enumerate() {
            if a.count > 1000 {
                f.push(&format!("attendance[{i}].count"), "must be 0 to 1000");
            }
            if !seen.insert(a.attendee_type as u8) {
                f.push(&format!("attendance[{i}].type"), "each type at most once");
            }
        }
        if body.attendance.is_empty() || body.attendance.len() > 5 {
            f.push("attendance", "give 1 to 5 types");
        }
        let held_on = happened_day("held_on", body.held_on)?;
        f.finish()?;
        let host = crate::service::check_unit(&state, "host_unit_id", body.host_unit_id).await?;
        let campaign =
            check_campaign(&state, &meta.principal, body.campaign_id, held_on, &[host], "the meeting").await?;
        let (Some(topic), Some(venue), Some(chair), Some(recorder)) = (topic, venue, chair, recorder) else {
            return Err(ApiError::Validation(Vec::new()));
        };
        let attendance = body
            .attendance
            .iter()
            .map(|a| Attendance { attendee_type: a.attendee_type.into(), count: a.count })
            .collect();
        let event = MeetingEvent::Recorded(meeting::Recorded {
            topic,
            held_on,
            venue,
            host_unit: host,
            campaign,
            chair,
            recorder,
            attendance,
            minutes,
        });
        let m: Meeting =
            records::create(&state, &meta, Action::RecordActivity, &body, Decided::events(vec![event])).await?;
        view(&state, &meta.principal, &m).await
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, format!("/api/v1/meetings/{}", v.id)))
        .json(v))
}

/// List meetings
///
/// The meetings the caller may read, newest first (a handler: those their unit hosted).
#[utoipa::path(tag = "meetings", params(RecordListQuery), responses((status = 200, description = "A page", body = RecordPage)), security(("bearer" = [])))]
#[get("/meetings")]
pub async fn list_meetings(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadRecords)?;
    let q: RecordListQuery = crate::extract::query(&req)?;
    let page = within_deadline(&req, super::records::list::<Meeting>(&state, &principal, &q, warnings)).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Get a meeting
///
/// The meeting, its opinions with the cases they became and where those stand; with `as_of`,
/// as it stood then.
#[utoipa::path(tag = "meetings", params(("id" = Uuid, Path, description = "The meeting"), RecordAsOfQuery), responses(
    (status = 200, description = "The meeting", body = RecordView),
    (status = 404, description = "No such meeting the caller may read", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[get("/meetings/{id}")]
pub async fn get_meeting(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadRecords)?;
    let as_of = super::records::as_of(&req)?;
    let (m, _) = records::load::<Meeting>(&state, &principal, *id, as_of).await?;
    Ok(HttpResponse::Ok().json(view_at(&state, &principal, &m, as_of).await?))
}

/// Register the opinions raised at a meeting
///
/// Registers every opinion as a case (channel `symposium`, received on the meeting's day, in
/// its campaign), each linked to the meeting with its number in the minutes, in one
/// transaction: one invalid opinion (its fields named `opinions[i].…`) refuses them all and
/// nothing is written. Clerks and supervisors.
#[utoipa::path(tag = "meetings", params(("id" = Uuid, Path, description = "The meeting")), request_body = OpinionsRequest, responses(
    (status = 200, description = "The meeting with its cases", body = RecordView),
    (status = 404, description = "No such meeting", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 422, description = "An opinion is invalid (nothing was registered), or `opinion-number-taken`", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/meetings/{id}/opinions")]
pub async fn register_meeting_opinions(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::RecordActivity)?;
    principal.require(Action::RegisterCase)?;
    let body: OpinionsRequest = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    let m = within_deadline(&req, async {
        if body.opinions.is_empty() || body.opinions.len() > MAX_OPINIONS {
            return Err(ApiError::Validation(vec![FieldError {
                field: "opinions".into(),
                message: format!("give 1 to {MAX_OPINIONS} opinions"),
            }]));
        }
        let mut prepared = Vec::with_capacity(body.opinions.len());
        for (i, o) in body.opinions.iter().enumerate() {
            if o.number.is_some_and(|n| !(1..=10_000).contains(&n)) {
                return Err(within(
                    i,
                    ApiError::Validation(vec![FieldError {
                        field: "number".into(),
                        message: "must be 1 to 10000".into(),
                    }]),
                ));
            }
            let case = RegisterCaseRequest {
                channel: Channel::Symposium,
                kind: o.kind,
                title: o.title.clone(),
                description: o.description.clone(),
                category_id: o.category_id,
                village_id: o.village_id,
                accused_unit_id: o.accused_unit_id,
                urgency: o.urgency,
                received_at: None,
                complainant: o.complainant.clone(),
                accept: false,
                notice: None,
                contact_card_serial: None,
                location: None,
            };
            // Every opinion's own fields are checked before anything is read or sealed.
            crate::service::check_registration_fields(&case).map_err(|e| within(i, e))?;
            prepared.push(case);
        }
        // The numbers the caller left to the server are taken from the meeting as loaded, and
        // the cases prepared with them; when a concurrent request took one of those numbers
        // meanwhile, everything is prepared again against the meeting as it is then.
        let given: std::collections::BTreeSet<u32> = body.opinions.iter().filter_map(|o| o.number).collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (meeting, _) = records::load::<Meeting>(&state, &meta.principal, *id, None).await?;
            let received_at = received_on(meeting.details.held_on);
            for case in &mut prepared {
                case.received_at = Some(received_at);
            }
            let links = meeting::register_opinions(
                &meeting,
                &body.opinions.iter().map(|o| (o.number, domain::CaseId::from_uuid(Uuid::nil()))).collect::<Vec<_>>(),
            )?;
            let numbers: Vec<u32> = match links.first() {
                Some(MeetingEvent::OpinionsRegistered(r)) => r.opinions.iter().map(|l| l.number).collect(),
                _ => Vec::new(),
            };
            let mut cases = Vec::with_capacity(prepared.len());
            for (i, (case, number)) in prepared.iter().zip(&numbers).enumerate() {
                let source =
                    CaseSource { source_type: SourceType::Meeting, record: meeting.id, item: number.to_string() };
                let new = crate::service::prepare_case(&state, &meta, case, Some(source), meeting.details.campaign)
                    .await
                    .map_err(|e| within(i, e))?;
                cases.push(new);
            }
            let pairs: Vec<(Option<u32>, domain::CaseId)> =
                numbers.iter().zip(&cases).map(|(n, c)| (Some(*n), c.id)).collect();
            let appends: Vec<infra::store::NewCaseAppend> = cases.iter().map(|c| c.append()).collect();
            let written = records::write::<Meeting>(&state, &meta, *id, Action::RecordActivity, &body, |m| {
                let events = meeting::register_opinions(m, &pairs)?;
                Ok(Decided { events, cases: appends.clone() })
            })
            .await;
            match written {
                Err(ApiError::Record(domain::records::RecordError::OpinionNumberTaken(n)))
                    if !given.contains(&n) && attempt < 10 => {}
                other => break other,
            }
        }
    })
    .await?;
    Ok(HttpResponse::Ok().json(view(&state, &meta.principal, &m).await?))
}

/// Registers the meeting routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(record_meeting).service(list_meetings).service(get_meeting).service(register_meeting_opinions);
}
