//! The hash chain: the canonical bytes of an event and their SHA-256, chained per case.
//!
//! This is the published recipe (docs/integrity.md gives it with test vectors):
//!
//! ```text
//! hash = SHA-256( "huiyin.event.v1"
//!               ‖ field(case_id: 16 raw bytes of the UUID)
//!               ‖ field(version: u32 big-endian)
//!               ‖ field(event_type: UTF-8)
//!               ‖ field(schema_version: u16 big-endian)
//!               ‖ field(occurred_at: RFC 3339 UTC, 6 fractional digits, "Z")
//!               ‖ field(canonical JSON of the payload)
//!               ‖ field(canonical JSON of the metadata)
//!               ‖ field(prev_hash: 32 bytes; 32 zero bytes for version 1) )
//! field(x) = u32 big-endian length of x ‖ x
//! ```
//!
//! Canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace, strings escaped as
//! serde_json escapes them (only `"`, `\` and control characters), integers only. PostgreSQL's
//! `jsonb` does not keep key order or spacing, so the bytes are always recomputed from the
//! parsed value, never taken from the text the database returns.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The hash of "no previous event".
pub const GENESIS: [u8; 32] = [0; 32];

/// The domain-separation tag that starts every hashed message.
pub const TAG: &[u8] = b"huiyin.event.v1";

/// The fields of an event that the hash covers.
#[derive(Debug, Clone, Copy)]
pub struct HashInput<'a> {
    /// The case.
    pub case_id: uuid::Uuid,
    /// Its version.
    pub version: u32,
    /// The stable type name.
    pub event_type: &'a str,
    /// The schema version.
    pub schema_version: u16,
    /// When it happened (microsecond precision).
    pub occurred_at: DateTime<Utc>,
    /// The payload.
    pub payload: &'a Value,
    /// The metadata.
    pub metadata: &'a Value,
    /// The previous event's hash.
    pub prev_hash: &'a [u8; 32],
}

/// Writes `v` as canonical JSON.
pub fn canonical_json(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                canonical_json(val, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_string(s, out),
        // Null, booleans and numbers have one serde_json rendering.
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(Value::String(s.to_owned()).to_string().as_bytes());
}

/// The time format the recipe uses.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The exact bytes that are hashed.
pub fn canonical_bytes(input: &HashInput<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(TAG);
    let mut field = |bytes: &[u8]| {
        out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    field(input.case_id.as_bytes());
    field(&input.version.to_be_bytes());
    field(input.event_type.as_bytes());
    field(&input.schema_version.to_be_bytes());
    field(format_time(input.occurred_at).as_bytes());
    let mut json = Vec::with_capacity(256);
    canonical_json(input.payload, &mut json);
    field(&json);
    json.clear();
    canonical_json(input.metadata, &mut json);
    field(&json);
    field(input.prev_hash);
    out
}

/// The event's hash.
pub fn event_hash(input: &HashInput<'_>) -> [u8; 32] {
    Sha256::digest(canonical_bytes(input)).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_drops_whitespace() {
        let v: Value = serde_json::from_str(r#"{ "b": 1, "a": {"z": [true, null], "y": "引号\"" } }"#).expect("json");
        let mut out = Vec::new();
        canonical_json(&v, &mut out);
        assert_eq!(String::from_utf8(out).expect("utf8"), r#"{"a":{"y":"引号\"","z":[true,null]},"b":1}"#);
    }

    #[test]
    fn the_hash_covers_every_field() {
        let payload = json!({"a": 1});
        let metadata = json!({"actor_id": "x"});
        let base = HashInput {
            case_id: uuid::Uuid::nil(),
            version: 1,
            event_type: "case.received",
            schema_version: 1,
            occurred_at: DateTime::from_timestamp(0, 0).expect("time"),
            payload: &payload,
            metadata: &metadata,
            prev_hash: &GENESIS,
        };
        let h = event_hash(&base);
        let other_payload = json!({"a": 2});
        let other_prev = [1u8; 32];
        for changed in [
            HashInput { version: 2, ..base },
            HashInput { event_type: "case.rejected", ..base },
            HashInput { schema_version: 2, ..base },
            HashInput { payload: &other_payload, ..base },
            HashInput { metadata: &payload, ..base },
            HashInput { prev_hash: &other_prev, ..base },
            HashInput { case_id: uuid::Uuid::max(), ..base },
        ] {
            assert_ne!(event_hash(&changed), h);
        }
    }
}
