//! `/api/v1/surveys`: questionnaires (问卷调查表) with versioned templates, the paper answers
//! typed in by village, a free-text complaint in an answer registered as a case, and the results
//! per question, overall and per village, as JSON, CSV or XLSX.

use std::collections::{BTreeMap, HashMap};

use actix_web::http::header;
use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse, get, post};
use chrono::NaiveDate;
use domain::records::survey::{self, Answer, Counts, Question, QuestionKind, Response, Survey};
use domain::records::{CaseSource, RecordError, SourceType};
use domain::{Name, Title, UnitId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ledger::{LedgerFormat, OFFERED, csv_line, negotiate};
use super::records::{RecordAsOfQuery, RecordListQuery, RecordPage, RecordView, happened_day};
use crate::auth::{Action, Principal};
use crate::dto::{CaseKind, Channel, RegisterCaseRequest};
use crate::extract::json_body;
use crate::middleware::within_deadline;
use crate::problem::{ApiError, FieldError};
use crate::records::{self, Decided};
use crate::routes::cases::meta;
use crate::service::Fields;
use crate::startup::AppState;

/// The most responses one request records (the JSON body limit holds about this many).
pub const MAX_RESPONSES: usize = 100;

/// How a question is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKindName {
    /// One option: the answer is the option's label.
    SingleChoice,
    /// Any options: the answer is a list of labels.
    MultipleChoice,
    /// 1 to 5: the answer is an integer.
    Rating,
    /// The answer is `true` or `false`.
    YesNo,
    /// The answer is text.
    FreeText,
}

/// An option of a choice question.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionInput {
    /// Its label: 1 to 100 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub label: String,
}

/// One question of a template.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionInput {
    /// Its key, unique in the template: 1 to 32 of `a-z`, `0-9`, `_`, `.`, `-`, starting with a
    /// letter or a digit.
    #[schema(min_length = 1, max_length = 32, pattern = r"^[a-z0-9][a-z0-9_.-]{0,31}$")]
    pub key: String,
    /// What is asked: 1 to 200 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub text: String,
    /// How it is answered.
    pub kind: QuestionKindName,
    /// The options of a choice question (2 to 20); none for the others (else 422 `bad-template`).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub options: Vec<OptionInput>,
    /// The policy it asks about ("耕地地力保护补贴"): 1 to 200 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub policy: Option<String>,
}

/// Creates a questionnaire.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "惠农政策落实情况问卷", "respondent_type": "村民", "surveyed_on": "2026-05-20", "place": "东岭村",
    "surveyor": "纪委 王", "unit_id": "00000000-0000-0000-0000-000000000001",
    "questions": [
        {"key": "subsidy", "text": "耕地地力保护补贴是否已到位？", "kind": "yes_no", "policy": "耕地地力保护补贴"},
        {"key": "service", "text": "对村务公开的评价", "kind": "rating"},
        {"key": "other", "text": "其他意见", "kind": "free_text"}
    ]
}))]
pub struct SurveyRequest {
    /// Its title: 1 to 200 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub title: String,
    /// Who answers it (村民, 个体户 …): 1 to 100 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub respondent_type: String,
    /// The day of the survey, 2000-01-01 to today (China Standard Time; a later day is 422
    /// `date-in-future`); inside its campaign's days, run by a unit taking part (422
    /// `outside-campaign`).
    #[schema(value_type = String, format = Date, pattern = r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$", example = "2026-05-20")]
    pub surveyed_on: NaiveDate,
    /// Where: 1 to 100 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub place: String,
    /// Who surveyed: 1 to 100 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub surveyor: String,
    /// The unit that runs it (an active unit).
    pub unit_id: Uuid,
    /// The campaign it belongs to.
    pub campaign_id: Option<Uuid>,
    /// The template's questions (1 to 100).
    #[schema(min_items = 1, max_items = 100)]
    pub questions: Vec<QuestionInput>,
}

/// A new template version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"questions": [{"key": "subsidy", "text": "补贴是否已到位？", "kind": "yes_no"}]}))]
pub struct TemplateRequest {
    /// The questions (1 to 100).
    #[schema(min_items = 1, max_items = 100)]
    pub questions: Vec<QuestionInput>,
}

/// A complaint written in a free-text answer, to register as a case (channel `questionnaire`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplaintInput {
    /// The free-text question whose answer is the complaint (it becomes the description).
    #[schema(min_length = 1, max_length = 32, pattern = r"^[a-z0-9][a-z0-9_.-]{0,31}$")]
    pub question: String,
    /// Complaint, suggestion or report.
    pub kind: CaseKind,
    /// A short title: 1 to 200 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub title: String,
    /// The category, if known.
    pub category_id: Option<Uuid>,
}

/// One paper questionnaire, typed in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseInput {
    /// The village it was answered in (an active village, farm or community).
    pub village_id: Uuid,
    /// The template version it answers (default: the current one).
    #[schema(minimum = 1, maximum = 1000, format = Int32)]
    pub template_version: Option<u32>,
    /// The answers by question key: a single choice's label, a multiple choice's labels, a
    /// rating 1–5, `true`/`false`, or text (1 to 5000 characters). Unanswered questions are left
    /// out. An answer that does not fit its question is 422 `validation`, naming it.
    #[schema(value_type = Object)]
    pub answers: HashMap<String, serde_json::Value>,
    /// A complaint in a free-text answer, to register as a case linked to this response.
    pub complaint: Option<ComplaintInput>,
}

/// Records responses.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"responses": [{"village_id": "00000000-0000-0000-0000-000000000002",
    "answers": {"subsidy": false, "service": 2, "other": "补贴至今未发放"},
    "complaint": {"question": "other", "kind": "complaint", "title": "耕地地力保护补贴未发放"}}]}))]
pub struct ResponsesRequest {
    /// The responses (1 to 100), all recorded or none.
    #[schema(min_items = 1, max_items = 100)]
    pub responses: Vec<ResponseInput>,
}

/// The query of the results.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResultsQuery {
    /// The template version (default: the current one).
    #[param(minimum = 1, maximum = 1000, format = Int32)]
    pub template_version: Option<u32>,
}

/// One option's count.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OptionCount {
    /// The option (a choice's label, `"1"`…`"5"` for a rating, `"yes"`/`"no"`).
    pub option: String,
    /// Responses that chose it.
    pub count: u32,
    /// `count` ÷ `answered` × 100, rounded to one decimal (0 when none answered).
    pub percent: f64,
}

/// A question's counts in one village.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VillageCounts {
    /// The village.
    pub village_id: Uuid,
    /// Responses from it.
    pub responses: u32,
    /// Of those, the ones that answered the question (the base of every percentage).
    pub answered: u32,
    /// By option.
    pub options: Vec<OptionCount>,
}

/// One question's results.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuestionResults {
    /// Its key.
    pub key: String,
    /// What is asked.
    pub text: String,
    /// How it is answered.
    pub kind: QuestionKindName,
    /// The policy it asks about.
    pub policy: Option<String>,
    /// Responses that answered it (the base of every overall percentage).
    pub answered: u32,
    /// By option, overall.
    pub options: Vec<OptionCount>,
    /// Per village.
    pub by_village: Vec<VillageCounts>,
}

/// A questionnaire's results.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SurveyResults {
    /// The questionnaire.
    pub survey_id: Uuid,
    /// The template version counted.
    pub template_version: u32,
    /// Responses to that version.
    pub responses: u32,
    /// Per question.
    pub questions: Vec<QuestionResults>,
}

fn kind_name(k: QuestionKind) -> QuestionKindName {
    match k {
        QuestionKind::SingleChoice => QuestionKindName::SingleChoice,
        QuestionKind::MultipleChoice => QuestionKindName::MultipleChoice,
        QuestionKind::Rating => QuestionKindName::Rating,
        QuestionKind::YesNo => QuestionKindName::YesNo,
        QuestionKind::FreeText => QuestionKindName::FreeText,
    }
}

fn questions(f: &mut Fields, input: &[QuestionInput]) -> Result<Vec<Question>, ApiError> {
    let mut out = Vec::new();
    for (i, q) in input.iter().enumerate() {
        let text = f.take(&format!("questions[{i}].text"), Title::parse(&q.text));
        let policy = q.policy.as_ref().and_then(|p| f.take(&format!("questions[{i}].policy"), Title::parse(p)));
        let options: Vec<Option<Name>> = q
            .options
            .iter()
            .enumerate()
            .map(|(j, o)| f.take(&format!("questions[{i}].options[{j}].label"), Name::parse(&o.label)))
            .collect();
        let kind = match q.kind {
            QuestionKindName::SingleChoice => QuestionKind::SingleChoice,
            QuestionKindName::MultipleChoice => QuestionKind::MultipleChoice,
            QuestionKindName::Rating => QuestionKind::Rating,
            QuestionKindName::YesNo => QuestionKind::YesNo,
            QuestionKindName::FreeText => QuestionKind::FreeText,
        };
        if let (Some(text), Some(options)) = (text, options.into_iter().collect::<Option<Vec<_>>>()) {
            out.push(Question { key: q.key.clone(), text, kind, options, policy });
        }
    }
    if input.is_empty() || input.len() > survey::MAX_QUESTIONS {
        f.push("questions", "give 1 to 100 questions");
    }
    survey::check_template(&out)?;
    Ok(out)
}

/// Reads one answer in the shape its question takes.
fn answer(q: &Question, v: &serde_json::Value) -> Result<Answer, &'static str> {
    use serde_json::Value;
    match (q.kind, v) {
        (QuestionKind::SingleChoice, Value::String(s)) => {
            Name::parse(s).map(Answer::Choice).map_err(|_| "must be an option's label")
        }
        (QuestionKind::MultipleChoice, Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().and_then(|s| Name::parse(s).ok()).ok_or("must be a list of option labels"))
            .collect::<Result<Vec<_>, _>>()
            .map(Answer::Choices),
        (QuestionKind::Rating, Value::Number(n)) => n
            .as_u64()
            .and_then(|r| u8::try_from(r).ok())
            .filter(|r| (1..=5).contains(r))
            .map(Answer::Rating)
            .ok_or("must be a rating from 1 to 5"),
        (QuestionKind::YesNo, Value::Bool(b)) => Ok(Answer::YesNo(*b)),
        (QuestionKind::FreeText, Value::String(s)) => {
            domain::Text::parse(s).map(Answer::Text).map_err(|_| "must be 1 to 5000 characters, not blank")
        }
        _ => Err("is not of the question's kind"),
    }
}

fn percent(count: u32, answered: u32) -> f64 {
    if answered == 0 { 0.0 } else { (f64::from(count) * 1000.0 / f64::from(answered)).round() / 10.0 }
}

/// The options a question's counts are listed under, in the template's order.
fn option_keys(q: &Question) -> Vec<String> {
    match q.kind {
        QuestionKind::SingleChoice | QuestionKind::MultipleChoice => {
            q.options.iter().map(|o| o.as_str().to_owned()).collect()
        }
        QuestionKind::Rating => (1..=5).map(|r: u8| r.to_string()).collect(),
        QuestionKind::YesNo => vec!["yes".into(), "no".into()],
        QuestionKind::FreeText => Vec::new(),
    }
}

fn option_counts(keys: &[String], c: &Counts) -> Vec<OptionCount> {
    keys.iter()
        .map(|k| {
            let count = c.counts.get(k).copied().unwrap_or(0);
            OptionCount { option: k.clone(), count, percent: percent(count, c.answered) }
        })
        .collect()
}

/// The results of a template version, from the tally folded into the survey's state.
pub fn results(s: &Survey, version: u32) -> Option<SurveyResults> {
    let template = s.template(version)?;
    let tally = s.tally(version)?;
    let villages: Vec<UnitId> = tally.responses.keys().copied().collect();
    let questions = template
        .iter()
        .map(|q| {
            let keys = option_keys(q);
            let per: BTreeMap<UnitId, Counts> = tally.questions.get(&q.key).cloned().unwrap_or_default();
            let mut all = Counts::default();
            for c in per.values() {
                all.merge(c);
            }
            QuestionResults {
                key: q.key.clone(),
                text: q.text.as_str().to_owned(),
                kind: kind_name(q.kind),
                policy: q.policy.as_ref().map(|p| p.as_str().to_owned()),
                answered: all.answered,
                options: option_counts(&keys, &all),
                by_village: villages
                    .iter()
                    .map(|v| {
                        let c = per.get(v).cloned().unwrap_or_default();
                        VillageCounts {
                            village_id: v.as_uuid(),
                            responses: tally.responses.get(v).copied().unwrap_or(0),
                            answered: c.answered,
                            options: option_counts(&keys, &c),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    Some(SurveyResults {
        survey_id: s.id.as_uuid(),
        template_version: version,
        responses: tally.responses.values().sum(),
        questions,
    })
}

/// The header of the results as CSV and XLSX.
pub const RESULTS_HEADER: &[&str] =
    &["问题编号", "问题", "村 (all = 全部)", "村名", "选项", "人数", "作答人数", "百分比"];

/// The results as rows (overall first, then per village with its name from `names`), as CSV and
/// XLSX show them.
pub fn result_rows(r: &SurveyResults, names: &HashMap<Uuid, String>) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for q in &r.questions {
        let mut push = |village: String, name: String, answered: u32, options: &[OptionCount]| {
            let row = |option: String, count: String, percent: String| {
                vec![
                    q.key.clone(),
                    q.text.clone(),
                    village.clone(),
                    name.clone(),
                    option,
                    count,
                    answered.to_string(),
                    percent,
                ]
            };
            if options.is_empty() {
                rows.push(row(String::new(), String::new(), String::new()));
            }
            for o in options {
                rows.push(row(o.option.clone(), o.count.to_string(), format!("{:.1}", o.percent)));
            }
        };
        push("all".into(), "全部".into(), q.answered, &q.options);
        for v in &q.by_village {
            let name = names.get(&v.village_id).cloned().unwrap_or_default();
            push(v.village_id.to_string(), name, v.answered, &v.options);
        }
    }
    rows
}

fn xlsx(rows: &[Vec<String>]) -> Result<Vec<u8>, ApiError> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let ws = wb.add_worksheet();
    ws.set_name("问卷结果").map_err(ApiError::internal)?;
    for (c, h) in RESULTS_HEADER.iter().enumerate() {
        ws.write_with_format(0, u16::try_from(c).unwrap_or(0), *h, &bold).map_err(ApiError::internal)?;
    }
    for (r, row) in rows.iter().enumerate() {
        let r = u32::try_from(r + 1).map_err(ApiError::internal)?;
        for (c, v) in row.iter().enumerate() {
            let c = u16::try_from(c).unwrap_or(0);
            // Counts are numbers in the sheet; labels and ids stay text.
            match (c, v.parse::<f64>()) {
                (5..=7, Ok(n)) => ws.write_number(r, c, n).map(|_| ()),
                _ => ws.write_string(r, c, v).map(|_| ()),
            }
            .map_err(ApiError::internal)?;
        }
    }
    wb.save_to_buffer().map_err(ApiError::internal)
}

async fn view(state: &AppState, principal: &Principal, s: &Survey) -> Result<RecordView, ApiError> {
    view_at(state, principal, s, None).await
}

async fn view_at(
    state: &AppState,
    principal: &Principal,
    s: &Survey,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<RecordView, ApiError> {
    let s = &for_reader(principal, s);
    let mut v = RecordView::at(state, principal, s.id.as_uuid(), s.version, s, Vec::new(), as_of).await?;
    // The tally is served by `/results`; the view keeps the count.
    if let Some(obj) = v.record.as_object_mut() {
        obj.remove("tallies");
        obj.insert("responses".into(), s.response_count().into());
    }
    Ok(v)
}

/// The questionnaire as a reader may see it: a handler, only what was answered in their unit
/// (its responses, its tally, its complaints' cases); others, all of it.
fn for_reader(principal: &Principal, s: &Survey) -> Survey {
    let Ok(crate::auth::Scope::OwnUnit) = principal.require(Action::ReadRecords) else { return s.clone() };
    let mut s = s.clone();
    let own = |v: &UnitId| principal.unit == Some(*v);
    for t in &mut s.tallies {
        t.responses.retain(|v, _| own(v));
        for per in t.questions.values_mut() {
            per.retain(|v, _| own(v));
        }
    }
    s.cases.retain(|c| own(&c.village));
    s
}

/// Create a questionnaire
///
/// Records a questionnaire: title, respondent type, day, place, surveyor, the unit that runs
/// it, its campaign, and the first template version (questions: single or multiple choice, a
/// rating 1–5, yes/no, free text; each may name the policy it asks about). Clerks and
/// supervisors.
#[utoipa::path(tag = "surveys", request_body = SurveyRequest, responses(
    (status = 201, description = "The questionnaire", body = RecordView),
    (status = 409, description = "`campaign-finished`: the campaign's summary report is frozen; nothing more joins it", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 422, description = "`bad-template`, a field invalid, a unit or campaign unknown", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/surveys")]
pub async fn create_survey(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::RecordActivity)?;
    let body: SurveyRequest = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    let v = within_deadline(&req, async {
        let mut f = Fields::default();
        let title = f.take("title", Title::parse(&body.title));
        let respondent_type = f.take("respondent_type", Name::parse(&body.respondent_type));
        let place = f.take("place", Name::parse(&body.place));
        let surveyor = f.take("surveyor", Name::parse(&body.surveyor));
        let surveyed_on = happened_day("surveyed_on", body.surveyed_on)?;
        let qs = questions(&mut f, &body.questions)?;
        f.finish()?;
        let unit = crate::service::check_unit(&state, "unit_id", body.unit_id).await?;
        let campaign = super::meetings::check_campaign(
            &state,
            &meta.principal,
            body.campaign_id,
            surveyed_on,
            &[unit],
            "the survey",
        )
        .await?;
        let (Some(title), Some(respondent_type), Some(place), Some(surveyor)) =
            (title, respondent_type, place, surveyor)
        else {
            return Err(ApiError::Validation(Vec::new()));
        };
        let events = survey::create(survey::Created {
            title,
            respondent_type,
            surveyed_on,
            place,
            surveyor,
            campaign,
            unit,
            questions: qs,
        })?;
        let s: Survey = records::create(&state, &meta, Action::RecordActivity, &body, Decided::events(events)).await?;
        view(&state, &meta.principal, &s).await
    })
    .await?;
    Ok(HttpResponse::Created().insert_header((header::LOCATION, format!("/api/v1/surveys/{}", v.id))).json(v))
}

/// List questionnaires
///
/// The questionnaires the caller may read, newest first (a handler: those of their unit or
/// answered in it).
#[utoipa::path(tag = "surveys", params(RecordListQuery), responses((status = 200, description = "A page", body = RecordPage)), security(("bearer" = [])))]
#[get("/surveys")]
pub async fn list_surveys(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadRecords)?;
    let q: RecordListQuery = crate::extract::query(&req)?;
    let mut page =
        within_deadline(&req, super::records::list::<Survey>(&state, &principal, &q, |_| Vec::new())).await?;
    for item in &mut page.items {
        if let Some(obj) = item.record.as_object_mut() {
            obj.remove("tallies");
        }
    }
    Ok(HttpResponse::Ok().json(page))
}

/// Get a questionnaire
///
/// The questionnaire, every template version, how many responses, and the cases its
/// complaints became; with `as_of`, as it stood then.
#[utoipa::path(tag = "surveys", params(("id" = Uuid, Path, description = "The questionnaire"), RecordAsOfQuery), responses(
    (status = 200, description = "The questionnaire", body = RecordView),
    (status = 404, description = "No such questionnaire the caller may read", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[get("/surveys/{id}")]
pub async fn get_survey(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadRecords)?;
    let as_of = super::records::as_of(&req)?;
    let (s, _) = records::load::<Survey>(&state, &principal, *id, as_of).await?;
    Ok(HttpResponse::Ok().json(view_at(&state, &principal, &s, as_of).await?))
}

/// Revise a questionnaire's template
///
/// Adds a template version; responses keep the version they answered, and results are counted
/// per version.
#[utoipa::path(tag = "surveys", params(("id" = Uuid, Path, description = "The questionnaire")), request_body = TemplateRequest, responses(
    (status = 200, description = "The questionnaire", body = RecordView),
    (status = 404, description = "No such questionnaire", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 422, description = "`bad-template`, a field invalid", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/surveys/{id}/template")]
pub async fn revise_template(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::RecordActivity)?;
    let body: TemplateRequest = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    let mut f = Fields::default();
    let qs = questions(&mut f, &body.questions)?;
    f.finish()?;
    let s = within_deadline(
        &req,
        records::write::<Survey>(&state, &meta, *id, Action::RecordActivity, &body, |_| {
            Ok(Decided::events(survey::revise(qs.clone())?))
        }),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view(&state, &meta.principal, &s).await?))
}

/// Record responses
///
/// Records paper questionnaires typed in (1 to 100 per request), each tagged by village and
/// checked against its template version (the body at most 64 KiB): an answer that does not fit
/// is 422 `validation` naming `responses[i].answers.<key>`, and nothing is recorded. A response with a `complaint`
/// registers the free-text answer as a case (channel `questionnaire`) linked to the response,
/// in the same transaction.
#[utoipa::path(tag = "surveys", params(("id" = Uuid, Path, description = "The questionnaire")), request_body = ResponsesRequest, responses(
    (status = 200, description = "The questionnaire", body = RecordView),
    (status = 404, description = "No such questionnaire", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 409, description = "`campaign-finished`: the campaign's summary report is frozen; nothing more joins it", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 422, description = "`validation` (an answer that does not fit, named by its path), a village unknown (nothing recorded)", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/surveys/{id}/responses")]
pub async fn record_responses(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::RecordActivity)?;
    let body: ResponsesRequest = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    if body.responses.is_empty() || body.responses.len() > MAX_RESPONSES {
        return Err(ApiError::Validation(vec![FieldError {
            field: "responses".into(),
            message: format!("give 1 to {MAX_RESPONSES} responses"),
        }]));
    }
    for (i, r) in body.responses.iter().enumerate() {
        if r.template_version.is_some_and(|v| !(1..=1000).contains(&v)) {
            return Err(ApiError::Validation(vec![FieldError {
                field: format!("responses[{i}].template_version"),
                message: "must be 1 to 1000".into(),
            }]));
        }
        if let Some(c) = &r.complaint {
            if !survey::is_question_key(&c.question) {
                return Err(ApiError::Validation(vec![FieldError {
                    field: format!("responses[{i}].complaint.question"),
                    message: "must be a question key".into(),
                }]));
            }
            Title::parse(&c.title).map_err(|e| {
                ApiError::Validation(vec![FieldError {
                    field: format!("responses[{i}].complaint.title"),
                    message: e.message.into(),
                }])
            })?;
        }
    }
    let s = within_deadline(&req, async {
        let (current, _) = records::load::<Survey>(&state, &meta.principal, *id, None).await?;
        let bad = |i: usize, key: &str, problem: &'static str| {
            ApiError::Validation(vec![FieldError {
                field: format!("responses[{i}].answers.{key}"),
                message: problem.into(),
            }])
        };
        let mut responses = Vec::with_capacity(body.responses.len());
        let mut cases = Vec::new();
        for (i, r) in body.responses.iter().enumerate() {
            let version = r.template_version.unwrap_or_else(|| current.template_version());
            let template = current.template(version).ok_or_else(|| {
                ApiError::Validation(vec![FieldError {
                    field: format!("responses[{i}].template_version"),
                    message: "the questionnaire has no such template version".into(),
                }])
            })?;
            let mut answers = BTreeMap::new();
            for (key, v) in &r.answers {
                let q = template
                    .iter()
                    .find(|q| &q.key == key)
                    .ok_or_else(|| bad(i, "?", "names no question of the template"))?;
                answers.insert(key.clone(), answer(q, v).map_err(|p| bad(i, key, p))?);
            }
            survey::check_answers(template, &answers).map_err(|e| match e {
                RecordError::BadAnswer { question, problem } => bad(i, &question, problem),
                other => ApiError::Record(other),
            })?;
            let village = crate::service::check_village(&state, r.village_id).await?;
            if current.campaign.is_some() {
                let at = current.surveyed_on;
                let id = current.campaign.map(|c| c.as_uuid());
                super::meetings::check_campaign(&state, &meta.principal, id, at, &[village], "a response's village")
                    .await?;
            }
            let response_id = Uuid::new_v4();
            let case = match &r.complaint {
                None => None,
                Some(c) => {
                    let Some(Answer::Text(text)) = answers.get(&c.question) else {
                        return Err(ApiError::Validation(vec![FieldError {
                            field: format!("responses[{i}].complaint.question"),
                            message: "must name a free-text question this response answered".into(),
                        }]));
                    };
                    let reg = RegisterCaseRequest {
                        channel: Channel::Questionnaire,
                        kind: c.kind,
                        title: c.title.clone(),
                        description: text.as_str().to_owned(),
                        category_id: c.category_id,
                        village_id: Some(village.as_uuid()),
                        accused_unit_id: None,
                        urgency: None,
                        received_at: Some(super::meetings::received_on(current.surveyed_on)),
                        complainant: None,
                        accept: false,
                        notice: None,
                        contact_card_serial: None,
                        location: None,
                    };
                    let source = CaseSource {
                        source_type: SourceType::Survey,
                        record: current.id,
                        item: response_id.to_string(),
                    };
                    let new = crate::service::prepare_case(&state, &meta, &reg, Some(source), current.campaign).await?;
                    cases.push(new.append());
                    Some(new.id)
                }
            };
            responses.push(Response { id: response_id, village, template_version: version, answers, case });
        }
        records::write::<Survey>(&state, &meta, *id, Action::RecordActivity, &body, |s| {
            let events = survey::record_responses(s, responses.clone()).map_err(|(i, e)| match e {
                RecordError::BadAnswer { question, problem } => bad(i, &question, problem),
                other => ApiError::Record(other),
            })?;
            Ok(Decided { events, cases: cases.clone() })
        })
        .await
    })
    .await?;
    Ok(HttpResponse::Ok().json(view(&state, &meta.principal, &s).await?))
}

/// A questionnaire's results
///
/// Per question: counts and percentages overall and per village, each with the number of
/// responses behind it (`answered`). A handler's results count their unit's responses only. Counted from the tally kept with the questionnaire's
/// state. `Accept: text/csv` (UTF-8 with a BOM) or the XLSX media type gives the same figures as
/// a table, each village with its id and name.
#[utoipa::path(tag = "surveys", params(("id" = Uuid, Path, description = "The questionnaire"), ResultsQuery), responses(
    (status = 200, description = "The results", body = SurveyResults, content(
        (SurveyResults = "application/json"),
        (String = "text/csv"),
        (String = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    )),
    (status = 404, description = "No such questionnaire, or no such template version", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 406, description = "Accept admits none of the formats", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[get("/surveys/{id}/results")]
pub async fn survey_results(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadRecords)?;
    let q: ResultsQuery = crate::extract::query(&req)?;
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = negotiate(accept).ok_or(ApiError::NotAcceptable { offered: OFFERED })?;
    if q.template_version.is_some_and(|v| !(1..=1000).contains(&v)) {
        return Err(ApiError::BadRequest {
            code: "invalid-query",
            detail: "template_version must be 1 to 1000".into(),
        });
    }
    let (s, _) = records::load::<Survey>(&state, &principal, *id, None).await?;
    let s = for_reader(&principal, &s);
    let r = results(&s, q.template_version.unwrap_or_else(|| s.template_version()))
        .ok_or(ApiError::NotFound("template version"))?;
    match format {
        LedgerFormat::Json => Ok(HttpResponse::Ok().json(r)),
        LedgerFormat::Csv => {
            // UTF-8 with a byte-order mark, so Excel reads the Chinese as the ledger's export.
            let mut out = vec![0xEF, 0xBB, 0xBF];
            csv_line(&RESULTS_HEADER.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>(), &mut out);
            for row in result_rows(&r, super::ledger::names(&state).await?.as_ref()) {
                csv_line(&row, &mut out);
            }
            Ok(HttpResponse::Ok().insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8")).body(out))
        }
        LedgerFormat::Xlsx => {
            let bytes = xlsx(&result_rows(&r, super::ledger::names(&state).await?.as_ref()))?;
            Ok(HttpResponse::Ok().insert_header((header::CONTENT_TYPE, super::ledger::XLSX)).body(bytes))
        }
    }
}

/// Registers the questionnaire routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create_survey)
        .service(list_surveys)
        .service(get_survey)
        .service(revise_template)
        .service(record_responses)
        .service(survey_results);
}
