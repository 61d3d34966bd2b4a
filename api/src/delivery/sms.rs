//! Text-message notices through an HTTP SMS gateway, in the shape the common Chinese gateways
//! use: a JSON POST naming the phone number, the signature name (签名), a template code with
//! its parameters and an `OutId` (the outbox item's id, which the gateway echoes and
//! deduplicates by), signed with the account's secret.
//!
//! The request carries `X-Sms-Access-Key`, `X-Sms-Timestamp` (Unix seconds), `X-Sms-Nonce` and
//! `X-Sms-Signature` = base64(HMAC-SHA256(secret, "POST\n<path>\n<timestamp>\n<nonce>\n
//! <hex SHA-256 of the body>")). The gateway answers `{"Code": "OK", …}` when it accepted the
//! message; any other `Code` is a refusal.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::SendError;

/// A configured gateway.
#[derive(Clone)]
pub struct SmsSender {
    client: reqwest::Client,
    url: String,
    access_key: String,
    secret: String,
    sign_name: String,
}

/// The body of a send request.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SmsRequest<'a> {
    /// The recipient.
    pub phone_numbers: &'a str,
    /// The signature name.
    pub sign_name: &'a str,
    /// The notice type (`acknowledgement`, `reply`, …): the gateway's pre-approved template.
    pub template_code: &'a str,
    /// The template's parameters, as a JSON string.
    pub template_param: String,
    /// The text as rendered from Huiyin's template (gateways that send free text use it).
    pub content: &'a str,
    /// The outbox item's id.
    pub out_id: Uuid,
}

/// The signature of a request: base64(HMAC-SHA256(secret, the string to sign)).
pub fn signature(secret: &str, path: &str, timestamp: i64, nonce: &str, body: &[u8]) -> String {
    let to_sign = format!("POST\n{path}\n{timestamp}\n{nonce}\n{}", hex::encode(Sha256::digest(body)));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("any key length"));
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl SmsSender {
    /// A sender to the gateway at `url`.
    ///
    /// Errors: the URL is not `http(s)://…`, or the HTTP client cannot be built.
    pub fn new(url: &str, access_key: &str, secret: &str, sign_name: &str) -> Result<Self, String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err("HUIYIN_SMS_GATEWAY_URL must be an http(s) URL".into());
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("the SMS gateway's HTTP client: {e}"))?;
        Ok(Self {
            client,
            url: url.to_owned(),
            access_key: access_key.to_owned(),
            secret: secret.to_owned(),
            sign_name: sign_name.to_owned(),
        })
    }

    /// Sends one message. A 4xx or a refusal `Code` is permanent; a timeout, a connection
    /// failure or a 5xx transient.
    pub async fn send(
        &self,
        id: Uuid,
        phone: &str,
        template_code: &str,
        params: &serde_json::Value,
        content: &str,
    ) -> Result<(), SendError> {
        let body = serde_json::to_vec(&SmsRequest {
            phone_numbers: phone,
            sign_name: &self.sign_name,
            template_code,
            template_param: params.to_string(),
            content,
            out_id: id,
        })
        .map_err(|e| SendError::Permanent(e.to_string()))?;
        let timestamp = chrono::Utc::now().timestamp();
        let nonce = Uuid::new_v4().to_string();
        let path = reqwest::Url::parse(&self.url).map(|u| u.path().to_owned()).unwrap_or_else(|_| "/".into());
        let sig = signature(&self.secret, &path, timestamp, &nonce, &body);
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-sms-access-key", &self.access_key)
            .header("x-sms-timestamp", timestamp.to_string())
            .header("x-sms-nonce", nonce)
            .header("x-sms-signature", sig)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                SendError::Transient(if e.is_timeout() {
                    "gateway timeout".into()
                } else {
                    "gateway unreachable".into()
                })
            })?;
        let status = response.status();
        if status.is_server_error() {
            return Err(SendError::Transient(format!("gateway answered {}", status.as_u16())));
        }
        if !status.is_success() {
            return Err(SendError::Permanent(format!("gateway answered {}", status.as_u16())));
        }
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        match answer.get("Code").and_then(|c| c.as_str()) {
            Some("OK") => Ok(()),
            Some(code) => {
                Err(SendError::Permanent(format!("gateway refused: {}", code.chars().take(64).collect::<String>())))
            }
            None => Err(SendError::Transient("gateway answered without a Code".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::signature;

    /// The string to sign and its HMAC, computed independently:
    /// `printf 'POST\n/sms/send\n1700000000\nn-1\n%s' "$(printf '{}' | sha256sum | cut -d' ' -f1)"
    ///  | openssl dgst -sha256 -hmac s3cret -binary | base64`.
    #[test]
    fn signature_matches_openssl() {
        assert_eq!(signature("s3cret", "/sms/send", 1_700_000_000, "n-1", b"{}"), EXPECTED);
    }
    const EXPECTED: &str = "3ak5x/E+D/ygh32JoHdFlJr6veTOz3+tqZOra7ch6ek=";
}
