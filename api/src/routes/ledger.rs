//! The ledger (台账), the overdue view and statistics: reads of the projection, computed against
//! the current time and the working calendar. Exports (CSV with a BOM for Excel, XLSX) are
//! streamed page by page, so memory stays flat however many rows there are; at most
//! `HUIYIN_MAX_EXPORTS` run at once (429 beyond), they read through the read pool, and an export
//! whose client leaves stops: the CSV body stops pulling pages when actix drops it, and the XLSX
//! build (on a blocking thread) watches a flag set when the request's future is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::header;
use actix_web::web::{Bytes, Data};
use actix_web::{HttpRequest, HttpResponse, get};
use chrono::{DateTime, Utc};
use domain::WorkingCalendar;
use infra::ledger::{Ledger, LedgerCursor, LedgerFilter, LedgerRow, LedgerSort};
use uuid::Uuid;

use crate::auth::{Action, Principal, Scope};
use crate::dto::*;
use crate::metrics::metrics;
use crate::middleware::{Admitted, Capacity, within_deadline};
use crate::problem::ApiError;
use crate::service::deadline_labels;
use crate::startup::AppState;

/// The largest page.
pub const MAX_PAGE: i64 = 100;
/// Rows fetched per round trip by exports.
const EXPORT_PAGE: i64 = 1000;
/// The XLSX media type.
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// A serialised enum's identifier.
pub(crate) fn ident<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The unit a caller is limited to, if any.
pub(crate) fn scope_unit(principal: &Principal, action: Action) -> Result<Option<Uuid>, ApiError> {
    match principal.require(action)? {
        Scope::All => Ok(None),
        Scope::OwnUnit => Ok(Some(principal.unit.map(|u| u.as_uuid()).ok_or(ApiError::Forbidden)?)),
    }
}

fn limit(l: Option<i64>, default: i64) -> Result<i64, ApiError> {
    match l {
        None => Ok(default),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => {
            Err(ApiError::BadRequest { code: "invalid-query", detail: format!("limit must be 1 to {MAX_PAGE}") })
        }
    }
}

fn cursor(c: Option<&str>) -> Result<Option<LedgerCursor>, ApiError> {
    issued_cursor(c, LedgerCursor::decode)
}

/// A list's `cursor` parameter decoded by `decode`: absent is the first page; one this service
/// did not issue is 400 `invalid-query`.
///
/// # Errors
/// [`ApiError::BadRequest`] for a cursor `decode` refuses.
pub(crate) fn issued_cursor<T>(c: Option<&str>, decode: impl Fn(&str) -> Option<T>) -> Result<Option<T>, ApiError> {
    c.map(|s| {
        decode(s).ok_or(ApiError::BadRequest {
            code: "invalid-query",
            detail: "cursor is not one this service issued".into(),
        })
    })
    .transpose()
}

/// Parses a stored stage identifier.
fn stage_of(s: &str) -> Option<Stage> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

/// A clock of a row, evaluated now.
fn deadline_now(
    stage: Option<&str>,
    started_at: Option<DateTime<Utc>>,
    due_at: Option<DateTime<Utc>>,
    calendar_incomplete: bool,
    now: DateTime<Utc>,
    calendar: &WorkingCalendar,
) -> Option<DeadlineNow> {
    let (stage, started_at, due_at) = (stage.and_then(stage_of)?, started_at?, due_at?);
    let (state, working_days_overdue, permille_used) = deadline_labels(started_at, due_at, now, calendar);
    Some(DeadlineNow {
        stage,
        started_at,
        due_at,
        state: state.into(),
        working_days_overdue,
        permille_used,
        calendar_incomplete,
    })
}

fn entry(r: LedgerRow, now: DateTime<Utc>, calendar: &WorkingCalendar) -> LedgerEntry {
    let deadline = if r.paused {
        None
    } else {
        deadline_now(r.deadline_stage.as_deref(), r.started_at, r.due_at, r.calendar_incomplete, now, calendar)
    };
    let next_deadline = deadline_now(
        r.next_due_stage.as_deref(),
        r.next_started_at,
        r.next_due_at,
        r.calendar_incomplete,
        now,
        calendar,
    );
    LedgerEntry {
        case_id: r.case_id,
        version: r.version,
        receipt_code: r.receipt_code,
        title: r.title,
        kind: r.kind,
        channel: r.channel,
        status: r.status,
        urgency: r.urgency,
        category_id: r.category_id,
        village_id: r.village_id,
        unit_id: r.unit_id,
        round: r.round,
        received_at: r.received_at,
        assigned_at: r.assigned_at,
        handled_at: r.handled_at,
        fed_back_at: r.fed_back_at,
        closed_at: r.closed_at,
        deadline,
        satisfaction: r.satisfaction,
        escalated: r.escalated,
        duplicate_of: r.duplicate_of,
        anonymous: r.anonymous,
        co_unit_ids: r.co_unit_ids,
        accepted_at: r.accepted_at,
        signed_at: r.signed_at,
        overall_due_at: r.overall_due_at,
        next_deadline,
        paused: r.paused,
    }
}

/// A query's time, checked to lie in 2000–2099 (400 `invalid-query` otherwise).
pub(crate) fn query_time(field: &str, t: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, ApiError> {
    t.map(|t| {
        crate::service::bounded_time(field, t).map_err(|_| ApiError::BadRequest {
            code: "invalid-query",
            detail: format!("{field} must lie between 2000 and 2099"),
        })
    })
    .transpose()
}

fn filter(q: &LedgerQuery, scope: Option<Uuid>) -> Result<LedgerFilter, ApiError> {
    let search = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if search.is_some_and(|s| s.chars().count() > 100) {
        return Err(ApiError::BadRequest { code: "invalid-query", detail: "q must be at most 100 characters".into() });
    }
    let received_from = query_time("received_from", q.received_from)?;
    let received_to = query_time("received_to", q.received_to)?;
    // The range is half-open, [from, to), as /stats reads it: an empty or inverted one is a
    // mistake to report, not a question whose answer is "nothing".
    if let (Some(from), Some(to)) = (received_from, received_to)
        && from >= to
    {
        return Err(ApiError::BadRequest {
            code: "invalid-query",
            detail: "received_from must be before received_to".into(),
        });
    }
    Ok(LedgerFilter {
        status: q.status.map(ident),
        receipt_code: match q.receipt_code.as_deref() {
            None => None,
            Some(c) => Some(
                domain::ReceiptCode::parse(c)
                    .map_err(|_| ApiError::BadRequest {
                        code: "invalid-query",
                        detail: "receipt_code must look like HY-20261102-7K3Q9PXM".into(),
                    })?
                    .as_str()
                    .to_owned(),
            ),
        },
        kind: q.kind.map(ident),
        channel: q.channel.map(ident),
        urgency: q.urgency.map(ident),
        category_id: q.category_id,
        village_id: q.village_id,
        unit_id: q.unit_id,
        overdue: q.overdue,
        escalated: q.escalated,
        received_from,
        received_to,
        q: search.map(str::to_owned),
        scope_unit: scope,
        campaign_id: q.campaign_id,
        campaign_phase: q.campaign_phase.map(ident),
        source_type: q.source_type.map(ident),
        source_id: q.source_id,
    })
}

fn sort(s: Option<LedgerSortParam>) -> LedgerSort {
    match s.unwrap_or_default() {
        LedgerSortParam::ReceivedDesc => LedgerSort::ReceivedDesc,
        LedgerSortParam::ReceivedAsc => LedgerSort::ReceivedAsc,
        LedgerSortParam::DueAsc => LedgerSort::DueAsc,
        LedgerSortParam::DueDesc => LedgerSort::DueDesc,
    }
}

fn sort_key(r: &LedgerRow, s: LedgerSort) -> LedgerCursor {
    let key = match s {
        LedgerSort::ReceivedDesc | LedgerSort::ReceivedAsc => r.received_at,
        LedgerSort::DueAsc | LedgerSort::DueDesc => r.due_at.unwrap_or(r.received_at),
    };
    LedgerCursor { key, id: r.case_id }
}

/// The formats the ledger is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LedgerFormat {
    Json,
    Csv,
    Xlsx,
}

/// What the ledger offers, in the server's order of preference, for a 406.
pub(crate) const OFFERED: &str =
    "application/json, text/csv, application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The format an `Accept` header asks for (RFC 9110 §12.5.1): each offered type takes the
/// quality of the most specific range that matches it (`type/subtype` over `type/*` over `*/*`);
/// the highest quality above 0 wins, ties going to the server's order (JSON, CSV, XLSX). No
/// header means JSON; a header none of them satisfies (or one that is not text) means `None`.
pub(crate) fn negotiate(accept: Option<&str>) -> Option<LedgerFormat> {
    const OFFERS: [(LedgerFormat, &str, &str); 3] = [
        (LedgerFormat::Json, "application", "json"),
        (LedgerFormat::Csv, "text", "csv"),
        (LedgerFormat::Xlsx, "application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ];
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else { return Some(LedgerFormat::Json) };
    let mut ranges = Vec::new();
    for part in accept.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut params = part.split(';').map(str::trim);
        let range = params.next().unwrap_or_default().to_ascii_lowercase();
        let (ty, sub) = range.split_once('/')?;
        let mut q = 1.0f32;
        for p in params {
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = v.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q))?;
            }
        }
        ranges.push((ty.trim().to_owned(), sub.trim().to_owned(), q));
    }
    let mut best: Option<(LedgerFormat, f32)> = None;
    for (format, ty, sub) in OFFERS {
        // (specificity, quality) of the most specific matching range.
        let q = ranges
            .iter()
            .filter_map(|(rt, rs, q)| match (rt.as_str(), rs.as_str()) {
                (t, s) if t == ty && s == sub => Some((2, *q)),
                (t, "*") if t == ty => Some((1, *q)),
                ("*", "*") => Some((0, *q)),
                _ => None,
            })
            .max_by_key(|(specificity, _)| *specificity)
            .map(|(_, q)| q);
        if let Some(q) = q.filter(|q| *q > 0.0)
            && best.is_none_or(|(_, b)| q > b)
        {
            best = Some((format, q));
        }
    }
    best.map(|(f, _)| f)
}

/// The query string with `cursor` replaced.
pub(crate) fn next_link(req: &HttpRequest, next: &str) -> String {
    let mut parts: Vec<&str> =
        req.query_string().split('&').filter(|p| !p.is_empty() && !p.starts_with("cursor=")).collect();
    let c = format!("cursor={next}");
    parts.push(&c);
    format!("<{}?{}>; rel=\"next\"", req.path(), parts.join("&"))
}

/// The ledger (台账)
///
/// Every case with its current state, filtered, searched (`q`: any run of characters a reader
/// sees, Chinese single characters included, full- and half-width alike), sorted by received or
/// due time, and paged with a keyset cursor (at most 100 rows a page; the `Link` header names
/// the next page). The format follows `Accept` (quality values count; `q=0` refuses a type):
/// JSON by default, `text/csv` (UTF-8 with BOM, for Excel) or
/// `application/vnd.openxmlformats-officedocument.spreadsheetml.sheet` export the whole filtered
/// ledger instead, streamed; an `Accept` none of the three satisfies is 406. Handlers see only
/// their unit's rows. The ledger holds no personal data.
#[utoipa::path(
    tag = "ledger",
    params(LedgerQuery),
    responses((status = 200, description = "A page of the ledger (or the export)", body = LedgerPage,
        headers(("Link" = String, description = "The next page: <…?cursor=…>; rel=\"next\"")),
        content(
            (LedgerPage = "application/json"),
            (String = "text/csv"),
            (String = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        )),
        (status = 406, description = "`Accept` admits none of JSON, CSV and XLSX", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 429, description = "An export was asked for while as many run as are admitted (`HUIYIN_MAX_EXPORTS`), or as many as one caller may run (`HUIYIN_MAX_EXPORTS_PER_CALLER`); retry after `Retry-After` seconds", content_type = "application/problem+json", body = crate::problem::Problem)),
    security(("bearer" = []))
)]
#[get("/ledger")]
pub async fn ledger(
    state: Data<AppState>,
    capacity: Data<Capacity>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let scope = scope_unit(&principal, Action::ReadLedger)?;
    let q: LedgerQuery = crate::extract::query(&req)?;
    let f = filter(&q, scope)?;
    let s = sort(q.sort);
    let after = cursor(q.cursor.as_deref())?;
    let accept = req.headers().get(header::ACCEPT).map(|v| v.to_str().unwrap_or("\u{0}"));
    let format = negotiate(accept).ok_or(ApiError::NotAcceptable { offered: OFFERED })?;
    if format != LedgerFormat::Json && crate::http_semantics::is_head(&req) {
        // The headers of an export, without doing it (no slot, no read, no workbook).
        let content_type = if format == LedgerFormat::Csv { "text/csv; charset=utf-8" } else { XLSX };
        return Ok(HttpResponse::Ok().insert_header((header::CONTENT_TYPE, content_type)).finish());
    }
    match format {
        LedgerFormat::Csv => {
            let slot = capacity.admit_export(&principal)?;
            return export_csv(&state, &capacity.readers, f, s, slot, capacity.stalled_client).await;
        }
        LedgerFormat::Xlsx => {
            let slot = capacity.admit_export(&principal)?;
            return export_xlsx(&state, &capacity.readers, f, s, slot).await;
        }
        LedgerFormat::Json => {}
    }
    let n = limit(q.limit, 20)?;
    let now = domain::truncate_to_micros(Utc::now());
    let (rows, calendar) = within_deadline(&req, async {
        let rows = state.ledger.page(&f, s, after, n + 1, now).await?;
        Ok((rows, state.reference.working_calendar().await?))
    })
    .await?;
    let mut rows = rows;
    let more = rows.len() as i64 > n;
    rows.truncate(n as usize);
    let next = if more { rows.last().map(|r| sort_key(r, s).encode()) } else { None };
    let page =
        LedgerPage { items: rows.into_iter().map(|r| entry(r, now, &calendar)).collect(), next_cursor: next.clone() };
    let mut resp = HttpResponse::Ok();
    if let Some(n) = &next {
        resp.insert_header((header::LINK, next_link(&req, n)));
    }
    Ok(resp.json(page))
}

/// Unit and category names for exports.
pub(crate) async fn names(state: &AppState) -> Result<Arc<HashMap<Uuid, String>>, ApiError> {
    let mut m = HashMap::new();
    for u in state.reference.list_units(true).await? {
        m.insert(u.id.as_uuid(), u.name);
    }
    for c in state.reference.list_categories().await? {
        m.insert(c.id.as_uuid(), c.name);
    }
    Ok(Arc::new(m))
}

/// The export's columns, in Chinese for the committee's spreadsheets.
pub const EXPORT_HEADER: &[&str] = &[
    "受理编号",
    "标题",
    "类型",
    "渠道",
    "状态",
    "紧急程度",
    "分类",
    "村/社区",
    "责任单位",
    "受理时间",
    "交办时间",
    "办理期限",
    "期限状态",
    "超期工作日",
    "办理时间",
    "反馈时间",
    "办结时间",
    "轮次",
    "满意度",
    "督办",
    "重复件",
];

fn label(v: &str) -> &str {
    match v {
        "received" => "已受理",
        "rejected" => "不予受理",
        "assigned" => "办理中",
        "handled" => "已办理",
        "fed_back" => "已反馈",
        "closed" => "已办结",
        "complaint" => "投诉",
        "suggestion" => "意见建议",
        "report" => "反映",
        "symposium" => "座谈会",
        "visit" => "走访",
        "contact_card" => "联系卡",
        "questionnaire" => "问卷",
        "phone" => "电话",
        "email" => "邮箱",
        "letter" => "来信",
        "walk_in" => "来访",
        "web" => "网上",
        "normal" => "一般",
        "urgent" => "紧急",
        "satisfied" => "满意",
        "basically_satisfied" => "基本满意",
        "dissatisfied" => "不满意",
        "on_track" => "正常",
        "due_soon" => "临期",
        "overdue" => "超期",
        other => other,
    }
}

fn local(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.with_timezone(&domain::calendar::china_offset()).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// One exported row, as strings.
fn export_row(
    r: &LedgerRow,
    now: DateTime<Utc>,
    calendar: &WorkingCalendar,
    names: &HashMap<Uuid, String>,
) -> Vec<String> {
    let name = |id: Option<Uuid>| id.and_then(|i| names.get(&i).cloned()).unwrap_or_default();
    let (state, days_over) = match (r.started_at, r.due_at) {
        (Some(s), Some(d)) => {
            let (label, wd, _) = deadline_labels(s, d, now, calendar);
            (label, wd.to_string())
        }
        _ => ("", String::new()),
    };
    vec![
        r.receipt_code.clone(),
        r.title.clone(),
        label(&r.kind).into(),
        label(&r.channel).into(),
        label(&r.status).into(),
        label(&r.urgency).into(),
        name(r.category_id),
        name(r.village_id),
        name(r.unit_id),
        local(Some(r.received_at)),
        local(r.assigned_at),
        local(r.due_at),
        label(state).into(),
        days_over,
        local(r.handled_at),
        local(r.fed_back_at),
        local(r.closed_at),
        r.round.to_string(),
        r.satisfaction.as_deref().map(label).unwrap_or_default().into(),
        if r.escalated { "是" } else { "" }.into(),
        r.duplicate_of.map(|d| d.to_string()).unwrap_or_default(),
    ]
}

pub(crate) fn csv_line(fields: &[String], out: &mut Vec<u8>) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Quote every field; a leading = + - @ would be a formula in Excel: prefix it with '.
        out.push(b'"');
        if f.starts_with(['=', '+', '-', '@']) {
            out.push(b'\'');
        }
        out.extend_from_slice(f.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"\r\n");
}

/// Pages through the whole filtered ledger.
struct Pages {
    ledger: Ledger,
    filter: LedgerFilter,
    sort: LedgerSort,
    after: Option<LedgerCursor>,
    done: bool,
    now: DateTime<Utc>,
}

impl Pages {
    async fn next(&mut self) -> Result<Option<Vec<LedgerRow>>, ApiError> {
        if self.done {
            return Ok(None);
        }
        let rows = self.ledger.page(&self.filter, self.sort, self.after, EXPORT_PAGE, self.now).await?;
        self.done = (rows.len() as i64) < EXPORT_PAGE;
        self.after = rows.last().map(|r| sort_key(r, self.sort));
        Ok(Some(rows))
    }
}

/// One running export: it holds its slot ([`Admitted`]) to the end, and counts itself cancelled
/// when dropped unfinished (its client left).
struct ExportRun {
    _slot: Admitted,
    finished: bool,
}

impl ExportRun {
    fn new(slot: Admitted) -> Self {
        Self { _slot: slot, finished: false }
    }

    /// It ran to its end (or failed): not a cancellation.
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for ExportRun {
    fn drop(&mut self) {
        if !self.finished {
            metrics().exports_cancelled.inc();
            tracing::info!("export stopped: the client left");
        }
    }
}

/// What the CSV body carries from one chunk to the next.
struct CsvBody {
    pages: Pages,
    head: Option<Vec<u8>>,
    run: ExportRun,
}

async fn export_csv(
    state: &AppState,
    readers: &AppState,
    filter: LedgerFilter,
    sort: LedgerSort,
    slot: Admitted,
    stalled_client: std::time::Duration,
) -> Result<HttpResponse, ApiError> {
    let now = domain::truncate_to_micros(Utc::now());
    let run = ExportRun::new(slot);
    let names = names(state).await?;
    let calendar = state.reference.working_calendar().await?;
    let pages = Pages { ledger: readers.ledger.clone(), filter, sort, after: None, done: false, now };
    let mut head = vec![0xEF, 0xBB, 0xBF];
    csv_line(&EXPORT_HEADER.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(), &mut head);
    // A page is fetched only when actix asks for the next chunk, and actix drops the body when
    // the client leaves: an abandoned export stops pulling pages, and its slot is freed.
    let body = futures_util::stream::unfold(Some(CsvBody { pages, head: Some(head), run }), move |st| {
        let names = names.clone();
        let calendar = calendar.clone();
        async move {
            let mut st = st?;
            if let Some(h) = st.head.take() {
                return Some((Ok::<_, ApiError>(Bytes::from(h)), Some(st)));
            }
            match st.pages.next().await {
                Ok(Some(rows)) => {
                    let mut buf = Vec::with_capacity(rows.len() * 200);
                    for r in &rows {
                        csv_line(&export_row(r, st.pages.now, &calendar, &names), &mut buf);
                    }
                    Some((Ok(Bytes::from(buf)), Some(st)))
                }
                Ok(None) => {
                    st.run.finish();
                    None
                }
                Err(e) => {
                    st.run.finish();
                    tracing::error!(error = %e, "csv export failed midway");
                    Some((Err(e), None))
                }
            }
        }
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"ledger.csv\""))
        .streaming(crate::middleware::paced(body, stalled_client)))
}

/// The folder the XLSX builder keeps its rows file in: made once per process under the system's
/// temporary folder with mode 0700, so whatever it holds, whatever its own mode, no other OS user
/// can reach it.
pub fn export_dir() -> std::io::Result<&'static std::path::Path> {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    if let Some(d) = DIR.get() {
        return Ok(d);
    }
    let dir = std::env::temp_dir().join(format!("huiyin-xlsx-{}", Uuid::new_v4().simple()));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir)?;
    Ok(DIR.get_or_init(|| dir))
}

/// A new temporary file that only this process can ever read: created exclusively
/// (`O_CREAT | O_EXCL`, so never through someone else's file or link) with mode 0600, and
/// unlinked at once, so it has no name while the export is written into it and is gone when the
/// handle closes, even if the process dies. An export holds the whole ledger.
pub fn private_temp_file() -> std::io::Result<std::fs::File> {
    let path = std::env::temp_dir().join(format!("huiyin-export-{}.xlsx", Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// Sets its flag when dropped: held by the request's future, which actix drops when the client
/// leaves (the server does not wait on half-closed connections, see `startup`).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A writer that fails once its flag is set, so that saving a workbook nobody will read stops.
struct CancellableWriter<'a, W> {
    inner: W,
    cancelled: &'a AtomicBool,
}

impl<W: std::io::Write> std::io::Write for CancellableWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("the client left"));
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Why an XLSX build stopped: its client left, or it failed.
enum BuildStop {
    Cancelled,
    Failed(ApiError),
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for BuildStop {
    fn from(e: E) -> Self {
        Self::Failed(ApiError::internal(e))
    }
}

/// Writes the whole workbook into a private temporary file, on a blocking thread, checking
/// `cancelled` before every page and while saving.
fn build_xlsx(
    pages: &mut Pages,
    handle: &tokio::runtime::Handle,
    calendar: &WorkingCalendar,
    names: &HashMap<Uuid, String>,
    cancelled: &AtomicBool,
) -> Result<std::fs::File, BuildStop> {
    use std::io::{Seek, Write};
    let stop = || if cancelled.load(Ordering::Relaxed) { Err(BuildStop::Cancelled) } else { Ok(()) };
    let mut wb = rust_xlsxwriter::Workbook::new();
    // Its rows file (an O_TMPFILE of mode 0644) in a folder only this process's user can enter.
    let dir = export_dir()?;
    wb.set_tempdir(dir)?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let ws = wb.add_worksheet_with_constant_memory()?;
    ws.set_name("台账")?;
    for (c, h) in EXPORT_HEADER.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *h, &bold)?;
    }
    let mut row = 1u32;
    loop {
        stop()?;
        let Some(rows) = handle.block_on(pages.next()).map_err(BuildStop::Failed)? else { break };
        for r in &rows {
            for (c, v) in export_row(r, pages.now, calendar, names).into_iter().enumerate() {
                ws.write_string(row, c as u16, v)?;
            }
            row += 1;
        }
    }
    stop()?;
    let mut file = private_temp_file()?;
    let mut out = std::io::BufWriter::new(&mut file);
    let saved = wb.save_to_writer(CancellableWriter { inner: &mut out, cancelled });
    stop()?;
    saved?;
    out.flush()?;
    drop(out);
    file.rewind()?;
    Ok(file)
}

async fn export_xlsx(
    state: &AppState,
    readers: &AppState,
    filter: LedgerFilter,
    sort: LedgerSort,
    slot: Admitted,
) -> Result<HttpResponse, ApiError> {
    let now = domain::truncate_to_micros(Utc::now());
    let mut run = ExportRun::new(slot);
    let names = names(state).await?;
    let calendar = state.reference.working_calendar().await?;
    let mut pages = Pages { ledger: readers.ledger.clone(), filter, sort, after: None, done: false, now };
    let handle = tokio::runtime::Handle::current();
    let cancelled = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancelled.clone());
    // rust_xlsxwriter writes synchronously; in constant-memory mode every row goes to a temporary
    // file at once (its own: nameless, but mode 0644, so it is made in [`export_dir`], 0700), so
    // memory stays flat. Pages
    // are fetched from this blocking thread. The workbook itself is written into a private
    // temporary file too ([`private_temp_file`]). The thread holds the export's slot, so the
    // bound counts builds still running, and stops at the next page once the client has left.
    let built =
        tokio::task::spawn_blocking(move || match build_xlsx(&mut pages, &handle, &calendar, &names, &cancelled) {
            Ok(file) => Ok((file, run)),
            Err(BuildStop::Cancelled) => Err(ApiError::Unavailable),
            Err(BuildStop::Failed(e)) => {
                run.finish();
                Err(e)
            }
        })
        .await
        .map_err(ApiError::internal)?;
    let (file, run) = built?;
    let file = tokio::fs::File::from_std(file);
    let body = futures_util::stream::unfold(Some((file, run)), |st| async move {
        use tokio::io::AsyncReadExt;
        let (mut f, mut run) = st?;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => {
                run.finish();
                None
            }
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, actix_web::Error>(Bytes::from(buf)), Some((f, run))))
            }
            Err(e) => {
                run.finish();
                Some((Err(actix_web::error::ErrorInternalServerError(e)), None))
            }
        }
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, XLSX))
        .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"ledger.xlsx\""))
        .streaming(body))
}

/// Overdue and due soon (超期 / 临期)
///
/// Cases past their deadline, and cases with at least 60 % (and 80 %) of their time used, at
/// every stage — waiting to be assigned, being handled, waiting for the reply to the citizen —
/// most overdue first, with working days overdue and counts per unit and stage. Always computed
/// against the current time and the working calendar, never a stored flag. Handlers see only
/// their unit.
#[utoipa::path(tag = "ledger", params(OverdueQuery), responses((status = 200, description = "The overdue view", body = OverdueView,
    headers(("Link" = String, description = "The next page: <…?cursor=…>; rel=\"next\"")))), security(("bearer" = [])))]
#[get("/overdue")]
pub async fn overdue(state: Data<AppState>, principal: Principal, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let scope = scope_unit(&principal, Action::ReadLedger)?;
    let q: OverdueQuery = crate::extract::query(&req)?;
    let unit = match (scope, q.unit_id) {
        (Some(own), Some(asked)) if own != asked => return Err(ApiError::Forbidden),
        (Some(own), _) => Some(own),
        (None, asked) => asked,
    };
    let n = limit(q.limit, 50)?;
    let after = cursor(q.cursor.as_deref())?;
    let now = domain::truncate_to_micros(Utc::now());
    let ((rows, counts), calendar) = within_deadline(&req, async {
        Ok((state.ledger.watch(unit, now, after, n + 1).await?, state.reference.working_calendar().await?))
    })
    .await?;
    let mut rows = rows;
    let more = rows.len() as i64 > n;
    rows.truncate(n as usize);
    // The overdue view pages by the clock that falls due first.
    let next_cursor = if more {
        rows.last().map(|r| LedgerCursor { key: r.next_due_at.unwrap_or(r.received_at), id: r.case_id }.encode())
    } else {
        None
    };
    let link = next_cursor.as_deref().map(|n| next_link(&req, n));
    let view = OverdueView {
        now,
        items: rows.into_iter().map(|r| entry(r, now, &calendar)).collect(),
        next_cursor,
        by_unit: booked(counts),
    };
    let mut resp = HttpResponse::Ok();
    if let Some(l) = link {
        resp.insert_header((header::LINK, l));
    }
    Ok(resp.json(view))
}

/// The counts of running clocks booked to whoever answers for each (`Stage::answered_by_intake`):
/// an intake stage's clock under no unit, whatever unit holds the case; the rest under the unit.
/// Most overdue first.
fn booked(counts: Vec<infra::ledger::WatchCount>) -> Vec<OverdueCount> {
    let mut merged: std::collections::BTreeMap<(Option<Uuid>, String), OverdueCount> = Default::default();
    for c in counts {
        let intake = serde_json::from_value::<domain::Stage>(serde_json::Value::String(c.stage.clone()))
            .is_ok_and(domain::Stage::answered_by_intake);
        let unit_id = if intake { None } else { c.unit_id };
        let entry = merged.entry((unit_id, c.stage.clone())).or_insert_with(|| OverdueCount {
            unit_id,
            stage: c.stage,
            overdue: 0,
            due_soon_80: 0,
            due_soon_60: 0,
        });
        entry.overdue += c.overdue;
        entry.due_soon_80 += c.due_soon_80;
        entry.due_soon_60 += c.due_soon_60;
    }
    let mut out: Vec<OverdueCount> = merged.into_values().collect();
    out.sort_by_key(|c| std::cmp::Reverse((c.overdue, c.due_soon_80)));
    out
}

/// Statistics
///
/// Counts of cases received in a date range by status, kind, channel, category, village and
/// responsible unit, in one scan. Handlers see only their unit.
#[utoipa::path(tag = "ledger", params(StatsQuery), responses((status = 200, description = "Counts", body = StatsView), (status = 400, description = "A parameter is malformed, or `from` does not lie before `to`", content_type = "application/problem+json", body = crate::problem::Problem)), security(("bearer" = [])))]
#[get("/stats")]
pub async fn stats(state: Data<AppState>, principal: Principal, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let scope = scope_unit(&principal, Action::ReadLedger)?;
    let q: StatsQuery = crate::extract::query(&req)?;
    let to = query_time("to", q.to)?.unwrap_or_else(Utc::now);
    let from = match query_time("from", q.from)? {
        Some(f) => f,
        None => to - chrono::Duration::days(365),
    };
    if from >= to {
        return Err(ApiError::BadRequest { code: "invalid-query", detail: "from must be before to".into() });
    }
    let campaign =
        infra::ledger::CampaignFilter { campaign_id: q.campaign_id, campaign_phase: q.campaign_phase.map(ident) };
    let s = within_deadline(&req, async { Ok(state.ledger.stats(from, to, scope, &campaign).await?) }).await?;
    let kc = |v: Vec<(String, i64)>| v.into_iter().map(|(k, count)| KeyCount { key: Some(k), count }).collect();
    let ku = |v: Vec<(Option<Uuid>, i64)>| {
        v.into_iter().map(|(k, count)| KeyCount { key: k.map(|u| u.to_string()), count }).collect()
    };
    Ok(HttpResponse::Ok().json(StatsView {
        from,
        to,
        total: s.total,
        by_status: kc(s.by_status),
        by_kind: kc(s.by_kind),
        by_channel: kc(s.by_channel),
        by_category: ku(s.by_category),
        by_village: ku(s.by_village),
        by_unit: ku(s.by_unit),
    }))
}

/// Registers the routes (under `/api/v1`).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(ledger).service(overdue).service(stats);
}

#[cfg(test)]
mod tests {
    use super::{LedgerFormat, negotiate};

    /// RFC 9110 §12.5.1: `q=0` means "not acceptable", the most specific range decides a type's
    /// quality, and the highest quality wins. The ledger once exported CSV for any `Accept`
    /// containing "text/csv", including `text/csv;q=0`.
    #[test]
    fn accept_is_negotiated_by_quality_and_specificity() {
        use LedgerFormat::{Csv, Json, Xlsx};
        let xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
        let table: [(Option<&str>, Option<LedgerFormat>); 16] = [
            (None, Some(Json)),
            (Some(""), Some(Json)),
            (Some("*/*"), Some(Json)),
            (Some("application/json"), Some(Json)),
            (Some("text/csv"), Some(Csv)),
            (Some("TEXT/CSV; charset=utf-8"), Some(Csv)),
            (Some(xlsx), Some(Xlsx)),
            (Some("text/csv;q=0"), None),
            (Some("text/csv;q=0, */*"), Some(Json)),
            (Some("application/json;q=0.5, text/csv"), Some(Csv)),
            (Some("application/json;q=0.5, text/csv;q=0.5"), Some(Json)),
            (Some("text/*"), Some(Csv)),
            (Some("*/*;q=0.1, text/csv;q=0"), Some(Json)),
            (Some("text/html"), None),
            (Some("text/csv;q=2"), None),
            (Some("nonsense"), None),
        ];
        for (accept, want) in table {
            assert_eq!(negotiate(accept), want, "Accept: {accept:?}");
        }
    }
}
