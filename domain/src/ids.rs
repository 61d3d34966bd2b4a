//! Identifiers and validated newtypes. Their fields are private: the only way to get one is
//! through a constructor that checks it, so a value of these types is always valid.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ValidationError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an existing UUID.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            /// The UUID inside.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// One case (诉求 / 案件).
    CaseId
);
uuid_id!(
    /// A unit of the organisation: the town, a village / farm / community, or a department.
    UnitId
);
uuid_id!(
    /// A category of the taxonomy, which carries the deadline policy.
    CategoryId
);
uuid_id!(
    /// A record of the campaign: a campaign, a meeting, a visit, a contact-card batch or a
    /// questionnaire (each a stream of events beside the cases).
    RecordId
);
uuid_id!(
    /// A data subject (a complainant) whose personal data is sealed with its own key.
    SubjectId
);

/// Who acted: the `sub` of the caller's token. 1 to 128 printable characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActorId(String);

impl ActorId {
    /// Checks and wraps an actor id.
    pub fn parse(s: impl Into<String>) -> Result<Self, ValidationError> {
        let s = s.into();
        let n = s.chars().count();
        if n == 0 || n > 128 || s.chars().any(char::is_control) {
            return Err(ValidationError::new("actor", "must be 1 to 128 printable characters"));
        }
        Ok(Self(s))
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ActorId {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<ActorId> for String {
    fn from(a: ActorId) -> String {
        a.0
    }
}

/// The receipt code a citizen gets (受理回执): `HY-YYYYMMDD-XXXXXXXX`, the date of receipt in
/// China Standard Time and eight Crockford base-32 characters taken from the case id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReceiptCode(String);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl ReceiptCode {
    /// Derives the code of a case from its id and its time of receipt. Deterministic, so a
    /// replay yields the same code; uniqueness is enforced by the store.
    pub fn for_case(id: CaseId, received_at: DateTime<Utc>) -> Self {
        let date = received_at.with_timezone(&crate::calendar::china_offset()).format("%Y%m%d");
        // 40 bits from the random part of the UUID (bytes 10..15 are random in v4 and v7).
        let bytes = id.as_uuid().into_bytes();
        let mut bits: u64 = 0;
        for b in &bytes[10..15] {
            bits = (bits << 8) | u64::from(*b);
        }
        let mut tail = [0u8; 8];
        for (i, slot) in tail.iter_mut().enumerate() {
            let shift = 35 - 5 * i;
            *slot = CROCKFORD[((bits >> shift) & 31) as usize];
        }
        let tail = String::from_utf8_lossy(&tail).into_owned();
        Self(format!("HY-{date}-{tail}"))
    }

    /// Checks the shape of a code typed in by a citizen (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let up = s.trim().to_ascii_uppercase();
        let ok = up.len() == 20
            && up.starts_with("HY-")
            && up.as_bytes()[11] == b'-'
            && up[3..11].bytes().all(|b| b.is_ascii_digit())
            && up[12..].bytes().all(|b| CROCKFORD.contains(&b));
        if ok { Ok(Self(up)) } else { Err(ValidationError::new("receipt_code", "must look like HY-20261128-7K3Q9PXM")) }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ReceiptCode {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ReceiptCode> for String {
    fn from(c: ReceiptCode) -> String {
        c.0
    }
}

/// Defines a text newtype with a character limit that must not be blank.
macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The most characters this text may have.
            pub const MAX_CHARS: usize = $max;
            /// Trims and checks the text.
            pub fn parse(s: impl AsRef<str>) -> Result<Self, ValidationError> {
                // Control characters are refused wherever they stand, trailing ones too (trimming
                // would otherwise keep a value the contract refuses, such as "a\u{85}").
                if s.as_ref().chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
                    return Err(ValidationError::new($field, "must not contain control characters"));
                }
                let t = s.as_ref().trim();
                if crate::ids::is_blank(t) {
                    return Err(ValidationError::new($field, "must not be blank"));
                }
                if t.chars().count() > $max {
                    return Err(ValidationError::new($field, concat!("must be at most ", stringify!($max), " characters")));
                }
                Ok(Self(t.to_owned()))
            }
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(t: $name) -> String {
                t.0
            }
        }
    };
}

bounded_text!(
    /// A case's title: 1 to 200 characters.
    Title, "title", 200
);
bounded_text!(
    /// A case's description: 1 to 5000 characters.
    Description, "description", 5000
);
bounded_text!(
    /// A reason or justification given for a decision: 1 to 1000 characters.
    Reason, "reason", 1000
);
bounded_text!(
    /// Free text recorded on a case (a note, a result, what the citizen was told, a comment):
    /// 1 to 5000 characters.
    Text, "text", 5000
);

bounded_text!(
    /// A person's or a place's name as a record states it (a meeting's chair, a visit's team
    /// member, a venue): 1 to 100 characters.
    Name, "name", 100
);

bounded_text!(
    /// Where a matter is, as an address: 1 to 200 characters.
    Address, "address", 200
);

/// A point in WGS 84 degrees, each value with at most six decimals (about 0.1 m), kept as the
/// decimal text it was checked as: payloads hold no floats, so they hash canonically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coordinates {
    /// Latitude, −90 to 90.
    pub lat: String,
    /// Longitude, −180 to 180.
    pub long: String,
}

impl Coordinates {
    /// Checks a latitude and a longitude (finite, in range) and rounds each to six decimals.
    pub fn parse(lat: f64, long: f64) -> Result<Self, ValidationError> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(ValidationError::new("lat", "must be a latitude between -90 and 90"));
        }
        if !long.is_finite() || !(-180.0..=180.0).contains(&long) {
            return Err(ValidationError::new("long", "must be a longitude between -180 and 180"));
        }
        // "-0.000000" and "0.000000" are one point.
        let fmt = |v: f64| {
            let s = format!("{v:.6}");
            if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') { "0.000000".to_owned() } else { s }
        };
        Ok(Self { lat: fmt(lat), long: fmt(long) })
    }

    /// The latitude as a number.
    pub fn lat_degrees(&self) -> f64 {
        self.lat.parse().unwrap_or(0.0)
    }

    /// The longitude as a number.
    pub fn long_degrees(&self) -> f64 {
        self.long.parse().unwrap_or(0.0)
    }
}

/// The kind of a unit of the organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// 镇: the town.
    Town,
    /// 村: a village.
    Village,
    /// 场: a farm.
    Farm,
    /// 居: a residential community.
    Community,
    /// 部门: a functional department.
    Department,
}

impl UnitKind {
    /// The kind's identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Town => "town",
            Self::Village => "village",
            Self::Farm => "farm",
            Self::Community => "community",
            Self::Department => "department",
        }
    }

    /// Parses an identifier.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "town" => Self::Town,
            "village" => Self::Village,
            "farm" => Self::Farm,
            "community" => Self::Community,
            "department" => Self::Department,
            _ => return None,
        })
    }
}

/// The fewest letters (any script; a Chinese character counts one) a stated reason holds.
pub const MIN_REASON_LETTERS: usize = 4;

/// The characters that show nothing, besides white space: the Basic Multilingual Plane's
/// default-ignorable code points (soft hyphen, combining grapheme joiner, zero-width spaces,
/// joiners and marks, bidirectional controls, invisible operators, variation selectors, the
/// byte-order mark) and the blank-looking letters (the Hangul fillers U+115F, U+1160, U+3164,
/// U+FFA0; the blank braille pattern U+2800). The OpenAPI patterns of every non-blank field
/// exclude the same list (the text and name patterns in `api/src/dto.rs`).
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}')
}

/// Whether a text is blank: nothing but white space and [`is_invisible`] characters, the
/// empty text included.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

/// What [`states_a_reason`] asks, as a field error's message says it.
pub fn reason_rule() -> String {
    format!("must state why: at least {MIN_REASON_LETTERS} letters or characters, at least 3 of them different")
}

/// Whether a text states a reason: at least [`MIN_REASON_LETTERS`] letters or CJK characters
/// (`char::is_alphabetic`: digits, punctuation, spaces and symbols do not count), of which at
/// least three differ (Latin compared case-insensitively). A reason is recorded as why
/// something was done (a reveal's purpose, a supervisor's justified close), so `.`, `x`,
/// `1234`, `aaaa` or `xxxxxxxx` is none; `核实身份` and `verify identity` are.
pub fn states_a_reason(text: &str) -> bool {
    let letters: Vec<char> =
        text.chars().filter(|c| c.is_alphabetic() && !is_invisible(*c)).flat_map(char::to_lowercase).collect();
    let distinct: std::collections::BTreeSet<char> = letters.iter().copied().collect();
    letters.len() >= MIN_REASON_LETTERS && distinct.len() >= 3
}
