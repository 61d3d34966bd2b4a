#!/usr/bin/env python3
"""An independent implementation of Huiyin's hash recipe (docs/integrity.md), for auditors.

Usage:
  python3 docs/verify_event.py vectors          # print the test vectors of docs/integrity.md
  python3 docs/verify_event.py history FILE     # check a case's history, as GET /api/v1/cases/{id}/events returns it

Needs nothing beyond the Python standard library.
"""
import hashlib
import json
import struct
import sys
from datetime import datetime, timezone

TAG = b"huiyin.event.v1"
LOG_TAG = b"huiyin.log.v1"
GENESIS = bytes(32)


def canonical_json(value) -> bytes:
    # Keys sorted (by code point, which is UTF-8 byte order), no whitespace, non-ASCII as is.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def field(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def rfc3339_micros(ts: str) -> str:
    t = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}Z"


def canonical_bytes(e: dict, prev: bytes) -> bytes:
    import uuid
    return (
        TAG
        + field(uuid.UUID(e["case_id"]).bytes)
        + field(struct.pack(">I", e["version"]))
        + field(e["event_type"].encode("utf-8"))
        + field(struct.pack(">H", e["schema_version"]))
        + field(rfc3339_micros(e["occurred_at"]).encode("ascii"))
        + field(canonical_json(e["payload"]))
        + field(canonical_json(e["metadata"]))
        + field(prev)
    )


def event_hash(e: dict, prev: bytes) -> bytes:
    return hashlib.sha256(canonical_bytes(e, prev)).digest()


def fold_log(prev: bytes, h: bytes) -> bytes:
    return hashlib.sha256(LOG_TAG + prev + h).digest()


def vectors():
    case = "0193a0c4-0000-7000-8000-000000000001"
    meta = {"actor_id": "clerk-1", "actor_role": "clerk", "correlation_id": None, "idempotency_key": None, "request_id": "req-1"}
    events = [
        {"case_id": case, "version": 1, "event_type": "case.note_added", "schema_version": 1,
         "occurred_at": "2026-11-02T02:00:00.000000Z", "payload": {"text": "已电话联系反映人"}, "metadata": meta},
        {"case_id": case, "version": 2, "event_type": "case.escalated", "schema_version": 1,
         "occurred_at": "2026-11-02T03:04:05.123456Z",
         "payload": {"reason": "群众反映强烈，列入督办", "z": 1, "a": {"c": True, "b": [1, 2, "\"引号\"\n"]}}, "metadata": meta},
    ]
    prev, log, out = GENESIS, GENESIS, []
    for e in events:
        h = event_hash(e, prev)
        log = fold_log(log, h)
        out.append(dict(e, prev_hash=prev.hex(), canonical_bytes=canonical_bytes(e, prev).hex(), hash=h.hex(), log_hash=log.hex()))
        prev = h
    print(json.dumps({"events": out}, ensure_ascii=False, indent=2))


def history(path):
    doc = json.load(open(path, encoding="utf-8"))
    prev = GENESIS
    for i, e in enumerate(doc["events"]):
        e2 = dict(e, case_id=doc["case_id"])
        if e["version"] != i + 1:
            sys.exit(f"version {i + 1} is missing")
        if bytes.fromhex(e["prev_hash"]) != prev:
            sys.exit(f"version {e['version']}: prev_hash does not match")
        if event_hash(e2, prev).hex() != e["hash"]:
            sys.exit(f"version {e['version']}: hash does not match its content")
        prev = bytes.fromhex(e["hash"])
    print(f"ok: {len(doc['events'])} events, head {prev.hex()}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["vectors"]:
        vectors()
    elif sys.argv[1:2] == ["history"]:
        history(sys.argv[2])
    else:
        sys.exit(__doc__)
