//! Notices that reach people (件件有回音): which events owe the citizen a notice, and the
//! templates they are written from. Pure: the outbox, the senders and the stored templates are
//! the infrastructure's.
//!
//! 信访工作条例 (2022) art. 23 asks that the citizen be told within 15 days whether the matter
//! is accepted; art. 32 that they be told the outcome in writing and why a limit was extended.
//! Each of those steps, once decided, puts a notice in the outbox in the same transaction.

use crate::events::{CaseEvent, ContactChannel, NoticeType};
use crate::lifecycle::Case;

/// A notice owed by one of a command's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owed {
    /// The index of the event that owes it, in the slice given to [`owed`].
    pub event: usize,
    /// What about.
    pub notice: NoticeType,
    /// How it reaches the citizen.
    pub channel: ContactChannel,
}

/// The notice an event owes the citizen, if any.
pub fn notice_of(event: &CaseEvent) -> Option<NoticeType> {
    match event {
        CaseEvent::Accepted(_) => Some(NoticeType::Acknowledgement),
        CaseEvent::FedBack(_) => Some(NoticeType::Reply),
        CaseEvent::FollowUpAttempted(_) => Some(NoticeType::FollowUpRequest),
        CaseEvent::CitizenAsked(_) => Some(NoticeType::Question),
        CaseEvent::DeadlineExtended(_) => Some(NoticeType::Extension),
        // 信访工作条例 (2022) art. 23: the citizen is told in writing that the matter is not accepted.
        CaseEvent::Rejected(_) => Some(NoticeType::NonAcceptance),
        _ => None,
    }
}

/// The notices `events` (just decided, in order) owe the citizen, each once per way the
/// citizen can be reached (`after.complainant.reachable_by`). Nothing for an anonymous
/// citizen, whose data holds no contact, nor once the personal data is erased.
pub fn owed(events: &[CaseEvent], after: &Case) -> Vec<Owed> {
    if after.complainant.anonymous || after.personal_data_erased || after.complainant.sealed.is_none() {
        return Vec::new();
    }
    let reachable = &after.complainant.reachable_by;
    events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| notice_of(e).map(|n| (i, n)))
        .flat_map(|(event, notice)| reachable.iter().map(move |&channel| Owed { event, notice, channel }))
        .collect()
}

/// What a template may say: each `{name}` in a template is replaced by its value.
///
/// - `{receipt_code}` — the citizen's receipt code (every notice);
/// - `{due_date}` — the date the answer is due, `YYYY-MM-DD` in China Standard Time
///   (acknowledgement, extension);
/// - `{reply}` — the reply's words (reply);
/// - `{question}` — the question's words (question);
/// - `{reason}` — why the case is not accepted, and where to turn (non-acceptance).
pub const PLACEHOLDERS: [&str; 5] = ["receipt_code", "due_date", "reply", "question", "reason"];

/// The values a template is filled with; an absent one renders as empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoticeValues {
    /// The receipt code.
    pub receipt_code: String,
    /// The due date.
    pub due_date: Option<String>,
    /// The reply.
    pub reply: Option<String>,
    /// The question.
    pub question: Option<String>,
    /// Why the case is not accepted.
    pub reason: Option<String>,
}

/// Checks a template: every `{…}` names one of [`PLACEHOLDERS`], braces are balanced, and the
/// text is 1–`max` characters. Errors name the first problem.
pub fn check_template(text: &str, max: usize) -> Result<(), &'static str> {
    if crate::ids::is_blank(text) || text.chars().count() > max {
        return Err("a template is 1 to its limit of characters");
    }
    let mut rest = text;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("a '}' without its '{'");
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { return Err("a '{' without its '}'") };
        if !PLACEHOLDERS.contains(&&after[..close]) {
            return Err("an unknown placeholder: use {receipt_code}, {due_date}, {reply}, {question} or {reason}");
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// Fills a template checked by [`check_template`].
pub fn render(template: &str, v: &NoticeValues) -> String {
    let or_empty = |s: &Option<String>| s.clone().unwrap_or_default();
    template
        .replace("{receipt_code}", &v.receipt_code)
        .replace("{due_date}", &or_empty(&v.due_date))
        .replace("{reply}", &or_empty(&v.reply))
        .replace("{question}", &or_empty(&v.question))
        .replace("{reason}", &or_empty(&v.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_name_known_placeholders_only() {
        assert!(check_template("您的诉求已受理，受理编号 {receipt_code}。", 500).is_ok());
        assert!(check_template("{name}", 500).is_err());
        assert!(check_template("{receipt_code", 500).is_err());
        assert!(check_template("receipt_code}", 500).is_err());
        assert!(check_template("  ", 500).is_err());
        assert!(check_template(&"字".repeat(501), 500).is_err());
    }

    #[test]
    fn rendering_fills_every_placeholder() {
        let v = NoticeValues {
            receipt_code: "HY-20261201-ABCDEFGH".into(),
            due_date: Some("2026-12-16".into()),
            reply: None,
            question: Some("路灯在哪个路口？".into()),
            reason: None,
        };
        assert_eq!(
            render("{receipt_code}/{due_date}/{reply}/{question}", &v),
            "HY-20261201-ABCDEFGH/2026-12-16//路灯在哪个路口？"
        );
    }
}
