//! Instants as the API writes them: RFC 3339 exactly as the spec's pattern reads it, for every
//! query parameter and body field that takes one.
//!
//! chrono's own parser is lenient where a boundary must not be: it takes a leading `+` or blank
//! before the year and a leap second (`23:59:60`). The spec's pattern checks the year as written
//! (`^20[0-9]{2}-`), so an instant is read only in this form:
//! `YYYY-MM-DDThh:mm:ss[.f{1,9}](Z|±hh:mm)`, the year 2000–2099, `T`/`Z` in either case. The
//! store keeps microseconds: a finer fraction (what many clients print, chrono's `to_rfc3339`
//! among them) is cut to the microsecond, as the spec says.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

/// What a malformed instant is told (never its value).
pub const EXPECTED: &str = "invalid instant: expected RFC 3339 such as 2026-03-16T09:00:00+08:00, the year 2000-2099 as written, no leap second";

/// Parses an instant in the form the module describes, cut to the microsecond.
///
/// # Errors
/// [`EXPECTED`] when `s` is not in that form or names no instant.
pub fn parse(s: &str) -> Result<DateTime<Utc>, &'static str> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let at = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    let shape = b.starts_with(b"20")
        && digits(2..4)
        && at(4, b"-")
        && digits(5..7)
        && at(7, b"-")
        && digits(8..10)
        && at(10, b"Tt")
        && digits(11..13)
        && at(13, b":")
        && digits(14..16)
        && at(16, b":")
        && digits(17..19);
    if !shape {
        return Err(EXPECTED);
    }
    let mut i = 19;
    if at(i, b".") {
        let n = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return Err(EXPECTED);
        }
        i += 1 + n;
    }
    let offset_ok = match b.get(i) {
        Some(b'Z' | b'z') => b.len() == i + 1,
        Some(b'+' | b'-') => b.len() == i + 6 && digits(i + 1..i + 3) && at(i + 3, b":") && digits(i + 4..i + 6),
        _ => false,
    };
    // A leap second (`:60`) has no instant of its own in the store.
    if !offset_ok || &b[17..19] == b"60" {
        return Err(EXPECTED);
    }
    DateTime::parse_from_rfc3339(s).map(|t| domain::truncate_to_micros(t.with_timezone(&Utc))).map_err(|_| EXPECTED)
}

/// `#[serde(deserialize_with = "crate::instant::required")]`: a required instant.
///
/// # Errors
/// [`EXPECTED`], as a serde error.
pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = std::borrow::Cow::<str>::deserialize(d)?;
    parse(&s).map_err(serde::de::Error::custom)
}

/// `#[serde(default, deserialize_with = "crate::instant::optional")]`: an optional instant
/// (absent or `null`: `None`).
///
/// # Errors
/// [`EXPECTED`], as a serde error.
pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<std::borrow::Cow<str>>::deserialize(d)? {
        None => Ok(None),
        Some(s) => parse(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn instants_are_read_as_the_spec_writes_them() {
        let ok = [
            ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
            ("2026-01-01t08:00:00+08:00", "2026-01-01T00:00:00Z"),
            ("2026-01-01T00:00:00.123456Z", "2026-01-01T00:00:00.123456Z"),
            ("2026-01-01T00:00:00.5-01:30", "2026-01-01T01:30:00.500Z"),
            ("2099-12-31T23:59:59.999999Z", "2099-12-31T23:59:59.999999Z"),
            ("2026-01-01T00:00:00.123456789Z", "2026-01-01T00:00:00.123456Z"),
        ];
        for (s, want) in ok {
            assert_eq!(
                parse(s).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
                Ok(want.into()),
                "{s}"
            );
        }
        for s in [
            "+2026-01-01T00:00:00Z",
            " 2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00Z ",
            "1999-12-31T23:59:59Z",
            "2100-01-01T00:00:00Z",
            "2026-01-01T23:59:60Z",
            "2026-01-01T00:00:00.1234567890Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00",
            "2026-01-01 00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01T00:00:00+0800",
            "2026-01-01T00:00:00+08:00:00",
            "2026-01-01",
            "２０26-01-01T00:00:00Z",
            "",
        ] {
            assert!(parse(s).is_err(), "{s:?} passed");
        }
    }
}
