//! The outbox worker: claims due notices, opens the citizen's contact (only now), fills the
//! template, sends, and records the delivery — or, after the last attempt or a permanent
//! refusal, the failure — as an event on the case, which settles the outbox item in the same
//! transaction. An item whose send succeeded is never claimed again; one claimed by a worker
//! that died is claimed again after its lease (60 s), so a crash between the send and the
//! record can send it twice, with the same `Message-ID` / `OutId`.

use std::time::Duration;

use domain::{CaseEvent, Command, ContactChannel, Role};
use infra::outbox::OutboxItem;
use infra::vault::Opened;

use super::SendError;
use super::sms::SmsSender;
use super::smtp::SmtpSender;
use crate::auth::Principal;
use crate::problem::ApiError;
use crate::service::{RequestMeta, execute_trusted};
use crate::settings::NoticeArgs;
use crate::startup::AppState;

/// How long a claim holds an item, in seconds: longer than a send can take (10 s timeouts).
pub const LEASE_S: i64 = 60;

/// The configured senders.
#[derive(Clone, Default)]
pub struct Senders {
    /// Mail.
    pub smtp: Option<SmtpSender>,
    /// Text messages.
    pub sms: Option<SmsSender>,
}

impl Senders {
    /// The senders the settings configure.
    ///
    /// Errors: a setting that does not parse.
    pub fn from_settings(s: &NoticeArgs) -> Result<Self, String> {
        let smtp = match &s.smtp_host {
            Some(host) if !host.trim().is_empty() => Some(SmtpSender::new(host.trim(), s.smtp_port, &s.smtp_from)?),
            _ => None,
        };
        let sms = match &s.sms_gateway_url {
            Some(url) if !url.trim().is_empty() => Some(SmsSender::new(
                url.trim(),
                &s.sms_access_key,
                s.sms_secret.as_deref().unwrap_or_default(),
                &s.sms_sign_name,
            )?),
            _ => None,
        };
        Ok(Self { smtp, sms })
    }

    fn channels(&self) -> Vec<ContactChannel> {
        let mut c = Vec::new();
        if self.smtp.is_some() {
            c.push(ContactChannel::Email);
        }
        if self.sms.is_some() {
            c.push(ContactChannel::Sms);
        }
        c
    }
}

fn worker_meta() -> RequestMeta {
    RequestMeta {
        principal: Principal {
            id: domain::ActorId::parse("huiyin:notices").unwrap_or_else(|_| unreachable!("a fixed valid id")),
            role: Role::Admin,
            unit: None,
            expires_at: i64::MAX,
        },
        request_id: None,
        idempotency_key: None,
        if_match: None,
    }
}

/// Runs the worker until the runtime stops: a batch every `poll_ms`, at once again while
/// batches come back full.
pub async fn run(state: AppState, senders: Senders, settings: NoticeArgs) {
    if senders.smtp.is_none() {
        tracing::warn!("no SMTP host (HUIYIN_SMTP_HOST): mail notices wait in the outbox, pending");
    }
    if senders.sms.is_none() {
        tracing::warn!("no SMS gateway (HUIYIN_SMS_GATEWAY_URL): text-message notices wait in the outbox, pending");
    }
    if senders.channels().is_empty() {
        return;
    }
    loop {
        match run_once(&state, &senders, &settings).await {
            Ok(n) if n >= BATCH as usize => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %crate::problem::error_chain(&e), "the notice worker failed; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(settings.poll_ms.max(50))).await;
    }
}

const BATCH: i64 = 20;

/// Claims and works one batch; returns how many items it claimed.
pub async fn run_once(state: &AppState, senders: &Senders, settings: &NoticeArgs) -> Result<usize, ApiError> {
    let items = infra::outbox::claim(&state.pool, &senders.channels(), BATCH, LEASE_S).await?;
    let n = items.len();
    for item in items {
        let outcome = send(state, senders, &item).await;
        let failure = match outcome {
            Ok(()) => None,
            Err(SendError::Transient(m)) if item.attempts < settings.max_attempts => {
                let wait = super::backoff_s(settings.retry_base_s, item.attempts);
                infra::outbox::retry_later(&state.pool, item.id, wait, &m).await?;
                continue;
            }
            Err(e) => Some(domain::Reason::parse(e.message()).unwrap_or_else(|_| {
                domain::Reason::parse("delivery failed").unwrap_or_else(|_| unreachable!("a fixed valid reason"))
            })),
        };
        let command = Command::RecordNoticeDelivery {
            outbox_id: item.id,
            notice: item.notice,
            channel: item.channel,
            attempts: item.attempts,
            failure,
        };
        if let Err(e) = execute_trusted(state, &worker_meta(), domain::CaseId::from_uuid(item.case_id), &command).await
        {
            // The item stays claimed until its lease lapses, then is tried again.
            tracing::warn!(error = %crate::problem::error_chain(&e), outbox.id = %item.id, "recording a notice's delivery failed");
        }
    }
    Ok(n)
}

/// Builds and sends one notice.
async fn send(state: &AppState, senders: &Senders, item: &OutboxItem) -> Result<(), SendError> {
    let transient = |e: ApiError| SendError::Transient(format!("reading the case: {}", e.code()));
    let loaded = state.store.load(domain::CaseId::from_uuid(item.case_id)).await.map_err(|e| transient(e.into()))?;
    let case = loaded.case.as_ref().ok_or_else(|| SendError::Permanent("the case is gone".into()))?;
    let event = loaded
        .events
        .iter()
        .find(|e| e.version == item.version)
        .and_then(|e| e.decode().ok())
        .ok_or_else(|| SendError::Permanent("the event that owes the notice is gone".into()))?;
    let day = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&domain::calendar::china_offset()).format("%Y-%m-%d").to_string()
    };
    let mut values =
        domain::notice::NoticeValues { receipt_code: case.receipt_code.as_str().to_owned(), ..Default::default() };
    match &event {
        CaseEvent::Accepted(a) => values.due_date = Some(day(a.overall.due_at)),
        // The citizen is told when the answer is due: the overall clock, which an extension moves
        // (once); the unit's handling deadline is internal.
        CaseEvent::DeadlineExtended(d) => {
            values.due_date = d.overall.or(case.overall).map(|o| day(o.due_at));
        }
        CaseEvent::Rejected(r) => {
            let mut why = r.reason.as_str().to_owned();
            if let Some(to) = &r.referred_to {
                why.push_str("（请向");
                why.push_str(to.as_str());
                why.push_str("反映）");
            }
            values.reason = Some(why);
        }
        CaseEvent::FedBack(f) => values.reply = Some(f.content.as_str().to_owned()),
        CaseEvent::CitizenAsked(q) => values.question = Some(q.text.as_str().to_owned()),
        _ => {}
    }
    let sealed = case.complainant.sealed.as_ref().ok_or_else(|| SendError::Permanent("no contact".into()))?;
    let data = match state.vault.open(&state.pool, sealed).await.map_err(|e| transient(e.into()))? {
        Opened::Clear(d) => d,
        Opened::Erased => return Err(SendError::Permanent("the personal data was erased".into())),
    };
    let template = infra::outbox::template(&state.pool, item.notice, item.channel)
        .await
        .map_err(|e| transient(e.into()))?
        .ok_or_else(|| SendError::Transient("no template".into()))?;
    let subject = domain::notice::render(&template.subject, &values);
    let body = domain::notice::render(&template.body, &values);
    match item.channel {
        ContactChannel::Email => {
            let to = data.email.ok_or_else(|| SendError::Permanent("no email address".into()))?;
            let smtp = senders.smtp.as_ref().ok_or_else(|| SendError::Transient("no SMTP host".into()))?;
            smtp.send(item.id, &to, &subject, &body).await
        }
        ContactChannel::Sms => {
            let phone = data.phone.ok_or_else(|| SendError::Permanent("no phone number".into()))?;
            let sms = senders.sms.as_ref().ok_or_else(|| SendError::Transient("no SMS gateway".into()))?;
            let params = serde_json::json!({
                "receipt_code": values.receipt_code,
                "due_date": values.due_date,
                "reply": values.reply,
                "question": values.question,
            });
            sms.send(item.id, &phone, item.notice.as_str(), &params, &body).await
        }
    }
}
