//! Replays every input a fuzz target once failed on (kept in `tests/fuzz/regressions/<target>/`,
//! one file per input), and a few written by hand, through the same checks the targets run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fuzz_checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8]), by_hand: &[&[u8]]) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz/regressions").join(target);
    let mut n = 0;
    for input in by_hand {
        check(input);
        n += 1;
    }
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".md") {
            continue;
        }
        check(&std::fs::read(&path).unwrap());
        n += 1;
    }
    n
}

#[test]
fn receipt_codes() {
    replay(
        "receipt_code",
        fuzz_checks::receipt_code,
        &[b"HY-20261128-7K3Q9PXM", b"hy-20261128-7k3q9pxm ", b"HY-2026112\xc3\xa9-7K3Q9PXM", b""],
    );
}

#[test]
fn phones_identity_numbers_and_masks() {
    replay(
        "personal",
        fuzz_checks::personal,
        &["11010519491231002X".as_bytes(), "+86 138-1234-5678".as_bytes(), "张".as_bytes(), b"", b"12"],
    );
}

#[test]
fn stored_events_upcast_or_refuse() {
    let assigned_v1 = br#"{"unit":"00000000-0000-4000-8000-000000000001","due_at":"2026-11-30T00:00:00Z"}"#;
    let mut v1 = vec![3u8, 0, 0];
    v1.extend_from_slice(assigned_v1);
    assert_eq!(domain::CaseEvent::TYPES[3].0, "case.assigned", "the hand-written input picks case.assigned");
    replay("upcast", fuzz_checks::upcast, &[&v1, b"\x00\x00\x00{}", b"\x05\xff\x07[1,2]"]);
}
