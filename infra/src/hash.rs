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

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The hash of "no previous event".
pub const GENESIS: [u8; 32] = [0; 32];

/// The domain-separation tag that starts every hashed message.
pub const TAG: &[u8] = b"huiyin.event.v1";

/// The fields of an event that the hash covers. The payload and metadata are a parsed
/// [`Value`], or a [`Parsed`] one when they come straight from a stored row (verification).
#[derive(Debug, Clone, Copy)]
pub struct HashInput<'a, J: Canonical = Value> {
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
    pub payload: &'a J,
    /// The metadata.
    pub metadata: &'a J,
    /// The previous event's hash.
    pub prev_hash: &'a [u8; 32],
}

/// A JSON value the hash can write as canonical JSON.
pub trait Canonical {
    /// Writes `self` as canonical JSON onto `out`.
    fn write_canonical(&self, out: &mut Vec<u8>);
}

impl Canonical for Value {
    fn write_canonical(&self, out: &mut Vec<u8>) {
        match self {
            Value::Object(map) => write_object(map.iter().map(|(k, v)| (k.as_str(), v)).collect(), out),
            Value::Array(items) => write_array(items, out),
            Value::String(s) => write_string(s, out),
            // Null, booleans and numbers have one serde_json rendering.
            other => write_scalar(other, out),
        }
    }
}

/// Writes `v` as canonical JSON.
pub fn canonical_json(v: &Value, out: &mut Vec<u8>) {
    v.write_canonical(out);
}

/// An object's members, keys sorted by their UTF-8 bytes.
fn write_object<J: Canonical>(mut entries: Vec<(&str, &J)>, out: &mut Vec<u8>) {
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (i, (k, val)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(k, out);
        out.push(b':');
        val.write_canonical(out);
    }
    out.push(b'}');
}

fn write_array<J: Canonical>(items: &[J], out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item.write_canonical(out);
    }
    out.push(b']');
}

/// A JSON value parsed from a stored row without copying its strings where it can: a string or
/// key without escapes borrows from the row's bytes. Verification parses each event's payload and
/// metadata into it (`jsonb` as tokio-postgres hands it over) to write their canonical JSON, which
/// is the same as a [`Value`]'s: object members are kept in a list and sorted when written.
/// Numbers are serde_json's, as in a [`Value`]. A repeated key (which `jsonb` never returns) is
/// kept twice here where a [`Value`] keeps the last.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// A string.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Parsed<'a>>),
    /// An object's members in the order given.
    Object(Vec<(Cow<'a, str>, Parsed<'a>)>),
}

impl Canonical for Parsed<'_> {
    fn write_canonical(&self, out: &mut Vec<u8>) {
        match self {
            Parsed::Null => out.extend_from_slice(b"null"),
            Parsed::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Parsed::Number(n) => {
                // Writing into a `Vec` cannot fail.
                let _ = serde_json::to_writer(out, n);
            }
            Parsed::String(s) => write_string(s, out),
            Parsed::Array(items) => write_array(items, out),
            Parsed::Object(members) => write_object(members.iter().map(|(k, v)| (k.as_ref(), v)).collect(), out),
        }
    }
}

/// The same value, owned. Built member by member, not by `Value`'s own `Deserialize`: with
/// serde_json's `raw_value` feature (which a crate elsewhere in a build can switch on) that one
/// reads an object whose only key is `$serde_json::private::RawValue` as the JSON text it holds,
/// so a stored payload would read, and hash, as something other than what the row holds.
impl From<Parsed<'_>> for Value {
    fn from(p: Parsed<'_>) -> Self {
        match p {
            Parsed::Null => Value::Null,
            Parsed::Bool(b) => Value::Bool(b),
            Parsed::Number(n) => Value::Number(n),
            Parsed::String(s) => Value::String(s.into_owned()),
            Parsed::Array(items) => Value::Array(items.into_iter().map(Value::from).collect()),
            Parsed::Object(members) => {
                Value::Object(members.into_iter().map(|(k, v)| (k.into_owned(), Value::from(v))).collect())
            }
        }
    }
}

impl<'de> Deserialize<'de> for Parsed<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Parsed<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Parsed<'de>, E> {
                Ok(Parsed::Null)
            }
            fn visit_none<E>(self) -> Result<Parsed<'de>, E> {
                Ok(Parsed::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Parsed<'de>, E> {
                Ok(Parsed::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Parsed<'de>, E> {
                Ok(Parsed::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Parsed<'de>, E> {
                Ok(Parsed::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Parsed<'de>, E> {
                // JSON text has no NaN or infinity, so this is always a number.
                Ok(serde_json::Number::from_f64(n).map_or(Parsed::Null, Parsed::Number))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Parsed<'de>, E> {
                Ok(Parsed::String(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Parsed<'de>, E> {
                Ok(Parsed::String(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Parsed<'de>, E> {
                Ok(Parsed::String(Cow::Owned(s)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed<'de>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Parsed::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0));
                // A key reads as a string (borrowed when it has no escapes), like any other.
                while let Some((k, v)) = map.next_entry::<Parsed<'de>, Parsed<'de>>()? {
                    let Parsed::String(k) = k else {
                        return Err(A::Error::custom("an object key that is not a string"));
                    };
                    members.push((k, v));
                }
                Ok(Parsed::Object(members))
            }
        }
        d.deserialize_any(V)
    }
}

/// `s` as serde_json writes a string (escaping only `"`, `\` and control characters), written
/// in place: no copy of the string, no intermediate `String`.
fn write_string(s: &str, out: &mut Vec<u8>) {
    // Writing into a `Vec` cannot fail, and a `&str` always serializes.
    let _ = serde_json::to_writer(out, s);
}

/// A null, boolean or number as serde_json writes it.
fn write_scalar(v: &Value, out: &mut Vec<u8>) {
    // Writing into a `Vec` cannot fail, and a `Value` always serializes.
    let _ = serde_json::to_writer(out, v);
}

/// The time format the recipe uses.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The exact bytes that are hashed.
pub fn canonical_bytes<J: Canonical>(input: &HashInput<'_, J>) -> Vec<u8> {
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
    input.payload.write_canonical(&mut json);
    field(&json);
    json.clear();
    input.metadata.write_canonical(&mut json);
    field(&json);
    field(input.prev_hash);
    out
}

/// The event's hash.
pub fn event_hash<J: Canonical>(input: &HashInput<'_, J>) -> [u8; 32] {
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
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let v = json!({"k\"\\": "a\"b\\c\n\u{1}\u{7f}中/\u{2028}"});
        let mut out = Vec::new();
        canonical_json(&v, &mut out);
        assert_eq!(String::from_utf8(out).expect("utf8"), "{\"k\\\"\\\\\":\"a\\\"b\\\\c\\n\\u0001\u{7f}中/\u{2028}\"}");
    }

    /// What verification writes from a stored row's bytes is what the writer hashed from its
    /// `Value`: the same canonical JSON for escapes, Chinese text, numbers of every kind, nesting,
    /// empty containers and keys that sort differently as bytes than as characters.
    #[test]
    fn a_parsed_row_writes_the_same_canonical_json_as_a_value() {
        let texts = [
            r#"{"b":1,"a":{"z":[true,null,false],"y":"引号\"转义\\ \n\t\u0001"},"é":-7,"z":1.5,"Z":18446744073709551615}"#,
            r#"{"village":"李家村","summary":"路灯坏了 \ud83d\ude00","n":[],"o":{},"neg":-9223372036854775808,"e":1e3}"#,
            r#"[{"b":[{"d":2,"c":1}]},"x",0,-0,0.1]"#,
            r#""just a string""#,
            "12",
            "null",
        ];
        for text in texts {
            let value: Value = serde_json::from_str(text).expect("json");
            let parsed: Parsed<'_> = serde_json::from_str(text).expect("json");
            let (mut a, mut b) = (Vec::new(), Vec::new());
            canonical_json(&value, &mut a);
            parsed.write_canonical(&mut b);
            assert_eq!(String::from_utf8(b).expect("utf8"), String::from_utf8(a).expect("utf8"), "{text}");
        }
        // A key without escapes borrows; one with an escape is copied.
        let parsed: Parsed<'_> = serde_json::from_str(r#"{"plain":"x","esc\"aped":"y"}"#).expect("json");
        let Parsed::Object(members) = parsed else { panic!("an object") };
        assert!(matches!(members[0].0, Cow::Borrowed("plain")));
        assert!(matches!(members[1].0, Cow::Owned(ref k) if k == "esc\"aped"));
    }

    /// serde_json's private raw-value key stays an ordinary key, whatever features the build
    /// has switched on (the workspace's tests build with `raw_value`, through sqlx).
    #[test]
    fn a_stored_object_with_serde_jsons_private_raw_value_key_reads_as_written() {
        let text = r#"{"summary":{"$serde_json::private::RawValue":"\"x\""}}"#;
        let parsed: Parsed<'_> = serde_json::from_str(text).expect("json");
        let value = Value::from(parsed.clone());
        let mut canonical = Vec::new();
        canonical_json(&value, &mut canonical);
        assert_eq!(String::from_utf8(canonical).expect("utf8"), text);
        let mut from_parsed = Vec::new();
        parsed.write_canonical(&mut from_parsed);
        assert_eq!(String::from_utf8(from_parsed).expect("utf8"), text);
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
