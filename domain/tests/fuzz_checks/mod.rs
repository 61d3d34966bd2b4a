//! What the fuzz targets (`tests/fuzz`) check of every input, shared with the regression test
//! that replays the inputs they once failed on (`domain/tests/fuzz_regressions.rs`). Each check
//! panics when a property fails; a parser that panics on its own fails it too.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use domain::personal::{check_id_number, check_phone, mask_name, mask_phone};
use domain::{CaseEvent, CaseId, ReceiptCode};

/// Receipt codes: any text either parses to a code that parses again to itself (upper-case, 20
/// characters), or is refused; and a code derived from any case id and time of receipt parses.
pub fn receipt_code(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(code) = ReceiptCode::parse(text)
    {
        assert_eq!(code.as_str().len(), 20, "{text:?}");
        assert_eq!(code.as_str(), code.as_str().to_ascii_uppercase());
        assert_eq!(ReceiptCode::parse(code.as_str()).as_ref(), Ok(&code), "{text:?}");
    }
    if data.len() >= 24 {
        let id = CaseId::from_uuid(uuid::Uuid::from_slice(&data[..16]).unwrap());
        let secs = i64::from_le_bytes(data[16..24].try_into().unwrap()).rem_euclid(4_102_444_800);
        let at = chrono::DateTime::from_timestamp(secs, 0).unwrap();
        let code = ReceiptCode::for_case(id, at);
        assert_eq!(ReceiptCode::parse(code.as_str()).as_ref(), Ok(&code), "{id:?} at {at}");
    }
}

/// Phone and identity numbers: the checks answer every text; an accepted identity number has
/// its GB 11643 shape; a mask never shows more than it may (a mobile number 7 of its 11
/// digits, anything shorter 2) and never the whole name.
pub fn personal(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let phone_ok = check_phone(text).is_ok();
    let masked = mask_phone(text);
    let shown = masked.chars().filter(char::is_ascii_digit).count();
    let digits = text.chars().filter(char::is_ascii_digit).count();
    assert!(shown <= 7, "{masked:?} shows {shown} digits");
    if phone_ok && digits <= 10 {
        assert!(shown <= 2, "a short number shows {shown} digits: {masked:?}");
    }
    if check_id_number(text).is_ok() {
        assert_eq!(text.len(), 18);
        assert!(text.as_bytes()[..17].iter().all(u8::is_ascii_digit));
    }
    let name: Vec<char> = mask_name(text).chars().collect();
    let given: Vec<char> = text.chars().collect();
    // The family name (the first character) stays; every other character becomes a star, at
    // least one; an empty name is a lone star.
    match given.first() {
        None => assert_eq!(name, ['*']),
        Some(first) => {
            assert_eq!(name[0], *first);
            assert_eq!(name.len(), given.len().max(2), "{text:?}");
        }
    }
    assert!(name.iter().skip(1).all(|c| *c == '*'), "{name:?}");
}

/// Upcasting: any stored type, schema version and JSON payload is read into an event or refused
/// with an error, and an event read back from what it writes is the same event.
pub fn upcast(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let types = CaseEvent::TYPES;
    let (event_type, current) = types[usize::from(data[0]) % types.len()];
    // Mostly the versions that exist (1 … current), sometimes anything.
    let version = if data[1] < 200 { 1 + u16::from(data[1]) % current } else { u16::from(data[2]) };
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&data[3..]) else { return };
    if let Ok(event) = CaseEvent::from_stored(event_type, version, payload) {
        assert_eq!(event.event_type(), event_type);
        let again = CaseEvent::from_stored(event.event_type(), event.schema_version(), event.payload())
            .unwrap_or_else(|e| panic!("{event_type} v{version} does not read back: {e}"));
        assert_eq!(again, event, "{event_type} v{version}");
    }
}
