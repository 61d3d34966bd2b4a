//! Delivery workers: notices to citizens from the outbox ([`notices`], by [`smtp`] and [`sms`])
//! and integrators' webhooks ([`webhooks`]). Each runs in every instance that has
//! `HUIYIN_DELIVERY_WORKERS` on; the database hands each item (an outbox item, an endpoint) to
//! one worker at a time.

pub mod notices;
pub mod sms;
pub mod smtp;
pub mod webhooks;

/// The delay before retry number `attempt` (1-based): `base` doubled each time, at most an hour.
pub fn backoff_s(base_s: u64, attempt: u32) -> i64 {
    let factor = 1u64 << attempt.saturating_sub(1).min(20);
    i64::try_from(base_s.saturating_mul(factor).min(3600)).unwrap_or(3600)
}

/// How a send ended, as the worker acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth retrying (a timeout, a refused connection, a 5xx, a 4xx SMTP reply).
    Transient(String),
    /// Never worth retrying (the recipient is invalid, the contact is gone, the gateway said no
    /// for good).
    Permanent(String),
}

impl SendError {
    /// What it says, for the record (never a personal value).
    pub fn message(&self) -> &str {
        match self {
            Self::Transient(m) | Self::Permanent(m) => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_s;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!([1, 2, 3, 4].map(|a| backoff_s(30, a)), [30, 60, 120, 240]);
        assert_eq!(backoff_s(30, 40), 3600);
        assert_eq!(backoff_s(u64::MAX, 1), 3600);
    }
}
