//! The citizen's side (件件有回音, 信访工作条例 (2022) art. 21: petitioners can look up how
//! their matter stands): submitting online, following the case by its receipt code and the
//! secret shown once, adding information, answering the handler's questions, rating the reply,
//! withdrawing.
//!
//! The secret is 32 random bytes (256 bits, base64url); only its Argon2id hash is kept. A
//! lookup with an unknown code hashes against a fixed dummy, so an unknown code and a wrong
//! secret cost the same time and answer the same 404.

use std::sync::OnceLock;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use base64::Engine;
use chrono::{DateTime, Utc};
use domain::{Case, CaseEvent, CaseId, Command, Role, Status};
use rand::RngCore;

use crate::auth::Principal;
use crate::problem::ApiError;
use crate::routes::public::{PublicCaseView, PublicQuestion, TimelineEntry};
use crate::service::{self, RequestMeta};
use crate::startup::AppState;

/// The length of a receipt secret as shown: 43 base64url characters (256 bits).
pub const SECRET_CHARS: usize = 43;

/// The one answer to a lookup that fails, whichever part was wrong.
pub fn not_found() -> ApiError {
    ApiError::NotFound("case with this receipt code and secret")
}

/// Who acts on the public side: the citizen holding the case's receipt code.
pub fn citizen_meta(request_id: Option<String>) -> RequestMeta {
    RequestMeta {
        principal: Principal {
            id: domain::ActorId::parse("citizen").unwrap_or_else(|_| unreachable!("a fixed valid id")),
            role: Role::Citizen,
            unit: None,
            expires_at: i64::MAX,
        },
        request_id,
        idempotency_key: None,
        if_match: None,
    }
}

/// A fresh secret.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The Argon2id hash (PHC string) of a secret, computed off the async workers.
pub async fn hash_secret(secret: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default().hash_password(secret.as_bytes()).map(|h| h.to_string()).map_err(|e| e.to_string())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::internal(std::io::Error::other(e)))
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default().hash_password(b"huiyin-dummy-secret").map(|h| h.to_string()).unwrap_or_default()
    })
}

/// The case a receipt code and secret open, or [`not_found`]; a malformed code, an unknown
/// one, a case registered without a secret and a wrong secret are told apart by no one.
pub async fn open(state: &AppState, receipt_code: &str, secret: Option<&str>) -> Result<CaseId, ApiError> {
    let code = domain::ReceiptCode::parse(receipt_code).ok();
    let found = match &code {
        Some(c) => infra::access::receipt_secret(&state.pool, c.as_str()).await?,
        None => None,
    };
    let secret = secret.unwrap_or_default().to_owned();
    let (case_id, stored) = match found {
        Some((id, hash)) => (Some(id), hash),
        None => (None, dummy_hash().to_owned()),
    };
    let matches = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|h| Argon2::default().verify_password(secret.as_bytes(), &h).is_ok())
    })
    .await
    .map_err(ApiError::internal)?;
    match case_id {
        Some(id) if matches => Ok(CaseId::from_uuid(id)),
        _ => Err(not_found()),
    }
}

/// Runs a citizen's command on their case and answers the public view after it.
pub async fn act(
    state: &AppState,
    request_id: Option<String>,
    case_id: CaseId,
    command: Command,
) -> Result<PublicCaseView, ApiError> {
    let meta = citizen_meta(request_id);
    service::execute_trusted(state, &meta, case_id, &command).await?;
    view(state, case_id).await
}

/// The status in plain words (Chinese, as the citizen reads it).
pub fn status_text(case: &Case) -> &'static str {
    match case.status {
        _ if case.withdrawal.is_some() => "已撤回",
        Status::Received if case.accepted_at.is_none() => "已登记，等待受理",
        Status::Received => "已受理，等待交办",
        Status::Rejected => "不予受理",
        Status::Assigned => "办理中",
        Status::Handled => "已办理，等待答复",
        Status::FedBack if case.satisfaction.is_none() => "已答复，请评价",
        Status::FedBack => "已答复",
        Status::Closed => "已办结",
    }
}

/// The public status identifier: the ledger's status, `withdrawn` for a withdrawn case.
fn public_status(case: &Case) -> &'static str {
    if case.withdrawal.is_some() { "withdrawn" } else { case.status.as_str() }
}

/// What the citizen sees of one event, if anything: the steps of their case, the reply, what
/// they and the handler said to each other — never internal notes, handling results, who
/// worked on it, nor anyone's personal data.
fn entry(e: &CaseEvent, at: DateTime<Utc>) -> Option<TimelineEntry> {
    let plain = |step: &str, text: &str| TimelineEntry {
        at,
        step: step.into(),
        text: text.into(),
        detail: None,
        question: None,
    };
    let with =
        |step: &str, text: &str, detail: &str| TimelineEntry { detail: Some(detail.into()), ..plain(step, text) };
    Some(match e {
        CaseEvent::Received(_) => plain("received", "已登记"),
        CaseEvent::Accepted(_) => plain("accepted", "已受理"),
        CaseEvent::Rejected(r) => {
            let mut detail = r.reason.as_str().to_owned();
            if let Some(to) = &r.referred_to {
                detail.push_str("（请向");
                detail.push_str(to.as_str());
                detail.push_str("反映）");
            }
            with("rejected", "不予受理", &detail)
        }
        CaseEvent::Assigned(_) => plain("dispatched", "已交办承办单位"),
        CaseEvent::Transferred(t) if t.to.is_some() => plain("dispatched", "已转交承办单位"),
        CaseEvent::Handled(_) => plain("handled", "承办单位已办理"),
        CaseEvent::FedBack(f) => with("replied", "已答复", f.content.as_str()),
        CaseEvent::SatisfactionRecorded(s) => plain(
            "rated",
            match s.rating {
                domain::Rating::Satisfied => "评价：满意",
                domain::Rating::BasicallySatisfied => "评价：基本满意",
                domain::Rating::Dissatisfied => "评价：不满意",
            },
        ),
        CaseEvent::Reopened(_) => plain("reopened", "重新办理"),
        // The answer's due date the citizen was given moves only with the overall clock.
        CaseEvent::DeadlineExtended(d) => match d.overall {
            Some(o) => with(
                "extended",
                "答复期限已延长",
                &o.due_at.with_timezone(&domain::calendar::china_offset()).format("%Y-%m-%d").to_string(),
            ),
            None => plain("extended", "承办单位的办理期限已延长"),
        },
        CaseEvent::InformationSupplemented(i) => with("information_added", "您补充了材料", i.text.as_str()),
        CaseEvent::CitizenAsked(q) => {
            TimelineEntry { question: Some(q.question), ..with("question", "承办方询问", q.text.as_str()) }
        }
        CaseEvent::CitizenAnswered(a) => {
            TimelineEntry { question: Some(a.question), ..with("answered", "您的回复", a.text.as_str()) }
        }
        CaseEvent::Withdrawn(w) => with("withdrawn", "您已撤回", w.reason.as_str()),
        CaseEvent::Closed(_) => plain("closed", "已办结"),
        _ => return None,
    })
}

/// The case as its citizen sees it.
pub async fn view(state: &AppState, case_id: CaseId) -> Result<PublicCaseView, ApiError> {
    let loaded = state.store.load(case_id).await?;
    let case = loaded.case.as_ref().ok_or_else(not_found)?;
    let mut timeline = Vec::new();
    let mut questions: Vec<PublicQuestion> = Vec::new();
    for stored in &loaded.events {
        let e = stored.decode().map_err(ApiError::internal)?;
        match &e {
            CaseEvent::CitizenAsked(q) => questions.push(PublicQuestion {
                number: q.question,
                text: q.text.as_str().into(),
                asked_at: stored.occurred_at,
                answer: None,
            }),
            CaseEvent::CitizenAnswered(a) => {
                if let Some(q) = questions.iter_mut().find(|q| q.number == a.question) {
                    q.answer = Some(a.text.as_str().into());
                }
            }
            _ => {}
        }
        if let Some(t) = entry(&e, stored.occurred_at) {
            timeline.push(t);
        }
    }
    let unit_name = match case.unit {
        Some(u) => state.reference.unit(u).await?.map(|u| u.name),
        None => None,
    };
    let open = !matches!(case.status, Status::Closed | Status::Rejected);
    let can_withdraw = open && case.satisfaction.is_none();
    Ok(PublicCaseView {
        receipt_code: case.receipt_code.as_str().into(),
        status: public_status(case).into(),
        status_text: status_text(case).into(),
        title: case.title.as_str().into(),
        received_at: case.received_at,
        responsible_unit: unit_name,
        answer_due_at: case.overall.filter(|_| case.overall_running() && case.paused.is_none()).map(|d| d.due_at),
        reply: case.feedback.as_ref().map(|f| f.content.as_str().into()),
        can_rate: case.status == Status::FedBack && case.satisfaction.is_none() && case.duplicate_of.is_none(),
        can_withdraw,
        can_add_information: open,
        questions,
        timeline,
    })
}
