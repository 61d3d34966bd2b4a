//! Mail notices over plain SMTP (lettre) to a relay the operator runs: the relay does TLS and
//! authentication towards the world. The mail's `Message-ID` is the outbox item's id, so a
//! relay or a mailbox that sees a mail twice (a worker crashed between sending and recording)
//! can tell.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use uuid::Uuid;

use super::SendError;

/// A configured SMTP sender.
#[derive(Clone)]
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl SmtpSender {
    /// A sender to `host:port`, mails from `from` (`Name <address>`).
    ///
    /// Errors: `from` is not a mailbox.
    pub fn new(host: &str, port: u16, from: &str) -> Result<Self, String> {
        let from = from.parse().map_err(|e| format!("HUIYIN_SMTP_FROM: {e}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(Duration::from_secs(10)))
            .build();
        Ok(Self { transport, from })
    }

    /// Sends one mail. A malformed address is permanent; an SMTP 5xx reply is permanent, any
    /// other failure (connection, 4xx, timeout) transient.
    pub async fn send(&self, id: Uuid, to: &str, subject: &str, body: &str) -> Result<(), SendError> {
        let to = to.parse().map_err(|_| SendError::Permanent("the email address does not parse".into()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{id}@huiyin>")))
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| SendError::Permanent(format!("the mail could not be built: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("SMTP refused the mail: {}", code_of(&e)))),
            Err(e) => Err(SendError::Transient(format!("SMTP: {}", code_of(&e)))),
        }
    }
}

/// What an SMTP error says without the addresses it may quote.
fn code_of(e: &lettre::transport::smtp::Error) -> String {
    match e.status() {
        Some(code) => format!("reply {code}"),
        None if e.is_timeout() => "timeout".into(),
        None => "connection failed".into(),
    }
}
