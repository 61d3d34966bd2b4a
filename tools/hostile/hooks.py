"""Schemathesis hooks and checks for Huiyin (loaded by scripts/schemathesis.sh via SCHEMATHESIS_HOOKS).

Three things:

1. Test data. Generated ids are random UUIDs, which only reach "404 not found". `before_call`
   swaps a case id in `/api/v1/cases/{id}...` (unless the run created that case) for one of the
   seeded cases (a handler's run: mostly its own unit's, some of the other's) or one the run
   created, four times in five, and does the same for unit, category, village and case ids in
   bodies and ledger filters. Only canonical UUIDs are swapped, for other valid UUIDs, so a
   positive request stays positive and a negative one stays negative (Schemathesis re-validates
   what a `before_call` hook changed). The choice is a function of the test case's id, so a run
   with the same seed (and one worker) makes the same choices.

2. Object-level authorisation between units: the check `huiyin_cross_unit_read`. In a handler's
   run, after every 2xx on a path that holds a case id, the case's ground truth is read as a
   supervisor; unless the case is also the other handler's (lead or co-unit, and not accusing the
   other's unit), the other handler must get 404 on `GET /api/v1/cases/{id}` and on
   `GET /api/v1/cases/{id}/events`. It also fails when the handler itself got a 2xx on a case its
   unit does not reach. Schemathesis' own `object_level_authorization` check runs too: the
   handlers' runs list both handlers as peers.

3. Documented exceptions: `filter_failure` drops a failure only when it matches one of the
   predicates below *and* its id is listed in docs/schemathesis-exceptions.md (with the reason).
   Every dropped failure is appended to ST_DIR/exceptions.jsonl, which tools/hostile/summarize.py
   counts.

Environment (set by scripts/schemathesis.sh): ST_ROLE, ST_STATE (the seed's JSON), ST_BASE,
ST_DIR (this role's report folder), ST_EXCEPTIONS (the exceptions document), ST_TOKEN_*.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import threading
import uuid
from typing import Any

import requests

import schemathesis

ROLE = os.environ.get("ST_ROLE", "")
BASE = os.environ.get("ST_BASE", "").rstrip("/")
OUT_DIR = os.environ.get("ST_DIR", ".")
with open(os.environ["ST_STATE"], encoding="utf-8") as _f:
    STATE: dict[str, Any] = json.load(_f)

TOKENS = {
    "supervisor": os.environ.get("ST_TOKEN_SUPERVISOR", ""),
    "handler_a": os.environ.get("ST_TOKEN_HANDLER_A", ""),
    "handler_b": os.environ.get("ST_TOKEN_HANDLER_B", ""),
}
UNIT_OF = {"handler_a": STATE["dept_a"], "handler_b": STATE["dept_b"]}
PEER_OF = {"handler_a": "handler_b", "handler_b": "handler_a"}

CASE_PATH = "/api/v1/cases/{id}"

# CPython 3.11 tracks the AST constructor's recursion depth per interpreter, not per thread: two
# threads in `ast.parse` at once fail with "AST constructor recursion depth mismatch" (Hypothesis
# parses lambda sources to describe strategies). With more than one worker (ST_WORKERS), parse
# one at a time.
_ast_parse = ast.parse
_ast_lock = threading.Lock()


def _locked_parse(*args, **kwargs):
    with _ast_lock:
        return _ast_parse(*args, **kwargs)


ast.parse = _locked_parse

# --- 1. test data ---------------------------------------------------------------------------------

_lock = threading.Lock()
# Cases the run itself created (201 of POST /api/v1/cases), usable by later requests; their ids
# are never swapped (a stateful scenario follows them from the POST).
_created: list[str] = []
_created_set: set[str] = set()


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    # Only the canonical, hyphenated form: anything else may be exactly what a negative test sends.
    return len(value) == 36


def _pick(case_id: str, salt: str, choices: list[str]) -> str | None:
    """One of `choices`, or None (keep the generated value) one time in five; fixed per test case."""
    if not choices:
        return None
    digest = hashlib.sha256(f"{case_id}:{salt}".encode()).digest()
    if digest[0] % 5 == 0:
        return None
    return choices[int.from_bytes(digest[1:5], "big") % len(choices)]


def _case_pool() -> list[str]:
    a, b = STATE["cases_a"], STATE["cases_b"]
    if ROLE == "handler_a":
        # Mostly its own cases (reachable), some of B's (must stay out of reach).
        return a * 3 + b
    if ROLE == "handler_b":
        return b * 3 + a
    with _lock:
        return a + b + _created[-50:]


UNIT_FIELDS = {"unit_id", "to_unit_id", "reroute_to", "default_unit_id", "parent_id", "accused_unit_id"}


def _units() -> list[str]:
    return [STATE["dept_a"], STATE["dept_b"], STATE["town"]]


def _swap_ids(container: dict | None, case_id: str, where: str) -> dict | None:
    """A copy of `container` with some of its reference ids swapped, or None when nothing changed.

    Never in place: generated containers may be shared between test cases.
    """
    if not isinstance(container, dict):
        return None
    swapped = dict(container)
    for key, value in container.items():
        if not _is_uuid(value):
            continue
        if key in UNIT_FIELDS:
            choices = _units()
        elif key == "category_id":
            choices = STATE["categories"]
        elif key == "village_id":
            choices = STATE["villages"]
        elif key == "of":
            choices = _case_pool()
        else:
            continue
        new = _pick(case_id, f"{where}.{key}", choices)
        if new is not None:
            swapped[key] = new
    return swapped if swapped != container else None


@schemathesis.hook
def before_call(context, case, kwargs):
    path_parameters = case.path_parameters
    if case.path.startswith(CASE_PATH) and isinstance(path_parameters, dict):
        current = path_parameters.get("id")
        # Random ids, and seeded ones Schemathesis drew from earlier responses (it keeps drawing
        # the first it saw), are spread over the seeded cases.
        if _is_uuid(current) and current not in _created_set:
            new = _pick(case.id, "path.id", _case_pool())
            if new is not None:
                case.path_parameters = {**path_parameters, "id": new}
    if case.path in ("/api/v1/ledger", "/api/v1/overdue", "/api/v1/stats"):
        query = _swap_ids(case.query, case.id, "query")
        if query is not None:
            case.query = query
    body = _swap_ids(case.body, case.id, "body")
    if body is not None:
        case.body = body


@schemathesis.hook
def after_call(context, case, response):
    if case.method == "POST" and case.path == "/api/v1/cases" and response.status_code == 201:
        try:
            new = response.json().get("id")
        except ValueError:
            return
        if _is_uuid(new):
            with _lock:
                _created.append(new)
                _created_set.add(new)


# --- 2. object-level authorisation between units --------------------------------------------------

_local = threading.local()


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False
        _local.session = session
    return session


def _get(path: str, who: str) -> requests.Response:
    return _session().get(f"{BASE}{path}", headers={"Authorization": f"Bearer {TOKENS[who]}"}, timeout=30)


def _reaches(view: dict, unit: str) -> bool:
    """Whether a handler of `unit` may see the case (api::auth::Principal::reaches)."""
    leads = view.get("unit_id") == unit
    co_handles = any(c.get("unit_id") == unit for c in view.get("co_units") or [])
    return (leads or co_handles) and view.get("accused_unit_id") != unit


@schemathesis.check
class huiyin_cross_unit_read:  # noqa: N801 - the check's name, as reports show it
    """A handler's 2xx on a case: the case is its unit's, and the other unit's handler gets 404.

    Idempotent per response (Schemathesis may call it again while shrinking): what it counts
    are sets. After the run it writes ST_DIR/cross-unit.json and fails if, in a handler's run,
    no 2xx on a case of the handler's own unit (and of its unit alone) was ever replayed: the
    check would have proved nothing.
    """

    def __init__(self) -> None:
        # (case id, version) pairs already replayed: a case is replayed again once it changed.
        self.probed: set[tuple[str, int]] = set()
        self.requests: set[str] = set()  # "METHOD path" of the handler's 2xx on case paths
        self.shared: set[str] = set()  # cases both units may read (joint handling)

    def after_response(self, ctx, response, case):
        if ROLE not in PEER_OF or not 200 <= response.status_code < 300:
            return None
        # OPTIONS (and the 405s of other methods) answer from the route table, for any id.
        if case.method.upper() not in ("GET", "HEAD", "POST"):
            return None
        if not case.path.startswith(CASE_PATH) or not isinstance(case.path_parameters, dict):
            return None
        case_id = case.path_parameters.get("id")
        if not _is_uuid(case_id):
            return None
        truth = _get(f"/api/v1/cases/{case_id}", "supervisor")
        if truth.status_code != 200:
            return None
        view = truth.json()
        sent = f"{case.method} {case.formatted_path}"
        self.requests.add(sent)
        if not _reaches(view, UNIT_OF[ROLE]):
            raise AssertionError(
                f"{ROLE} (unit {UNIT_OF[ROLE]}) got {response.status_code} on a case its unit does not reach\n"
                f"Request: {sent}\nCase: unit {view.get('unit_id')}, co-units "
                f"{[c.get('unit_id') for c in view.get('co_units') or []]}, accused {view.get('accused_unit_id')}"
            )
        peer = PEER_OF[ROLE]
        if _reaches(view, UNIT_OF[peer]):
            self.shared.add(case_id)  # joint handling: both units may read it
            return None
        key = (case_id, int(view.get("version") or 0))
        if key in self.probed:
            return None
        for path in (f"/api/v1/cases/{case_id}", f"/api/v1/cases/{case_id}/events"):
            r = _get(path, peer)
            if r.status_code != 404:
                raise AssertionError(
                    f"{peer} (unit {UNIT_OF[peer]}) read a case of {ROLE}'s unit {UNIT_OF[ROLE]}: "
                    f"GET {path} answered {r.status_code}, expected 404\n"
                    f"After: {sent} as {ROLE} -> {response.status_code}\nBody: {r.text[:300]}"
                )
        self.probed.add(key)
        return None

    def after_run(self, ctx):
        if ROLE not in PEER_OF:
            return
        cases = {case_id for case_id, _ in self.probed}
        stats = {
            "role": ROLE,
            "peer": PEER_OF[ROLE],
            "cases_replayed": len(cases),
            "case_versions_replayed": len(self.probed),
            "peer_reads": 2 * len(self.probed),
            "distinct_2xx_requests": len(self.requests),
            "shared_cases_skipped": len(self.shared),
        }
        with open(os.path.join(OUT_DIR, "cross-unit.json"), "w", encoding="utf-8") as f:
            json.dump(stats, f, indent=1)
        if not self.probed:
            raise AssertionError(
                f"{ROLE} never got a 2xx on a case of its own unit: the cross-unit check replayed nothing "
                "(are the seeded cases reachable?)"
            )


# --- 3. documented exceptions ---------------------------------------------------------------------

with open(os.environ.get("ST_EXCEPTIONS", "docs/schemathesis-exceptions.md"), encoding="utf-8") as _f:
    _DOCUMENTED = set(re.findall(r"`(EX-[A-Z0-9-]+)`", _f.read()))

# The If-Match pattern the spec declares for every command.
_IF_MATCH = re.compile(r'^[ \t]*(\*|(W/)?"[0-9]{1,9}"([ \t]*,[ \t]*(W/)?"[0-9]{1,9}")*)[ \t]*$')


def _problem(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _header(case, name: str) -> str | None:
    for key, value in (case.headers or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


# Field errors (the whole list of a 422, or a 400's detail) of rules the schemas do not carry:
# between two fields, between the path and the body, or of a value's meaning. Each is stated in
# the field's or parameter's description (or, for `anonymous`, is what the field means).
_CROSS_FIELD = {
    "EX-UNSTATABLE-RULE": {
        "from must be before to",
        "received_from must be before received_to",
        "every date must lie in the year of the path",
        "a date appears twice",
        "a make-up working day must be a Saturday or a Sunday",
        "working days must be 1 to 60 (the regulation's 60-day limit)",
        "calendar days must be 1 to 90 (60 and one 30-day extension)",
        "must state why: at least 4 letters or characters, at least 3 of them different",
        "must hold a real birth date (characters 7 to 14, YYYYMMDD)",
        "its check character does not match (GB 11643-1999)",
        "an anonymous complainant gives no name, phone, email or ID number",
        "give a name, a phone number or an email address, or set anonymous",
        "give both lat and long, or neither",
        "give an address or coordinates, or leave location out",
        # A category's Open311 attributes: values by data type, codes, orders and keys unique.
        "only list types have values",
        "a list type names its values",
        "each code once",
        "1 to 1000, each order once",
        "keys unique, 1 to 50 of letters, digits, _ . -; names 1 to 100 characters",
    },
    # Judged against what the server holds: the routing rules, the kind of the unit named.
    "EX-STATEFUL-VALUE-RULE": {
        "is required: no routing rule covers the case's category and village",
        "must be the unit's own tier: village for a village, farm or community, town otherwise",
    },
}

# Domain refusals of a request's values judged against the case, the clock or the category's
# policy (api::problem::is_input_error: 422 with the rule's code), which no schema can know.
_STATEFUL_VALUE_RULES = {
    "received-in-future",
    "deadline-in-past",
    "deadline-beyond-policy",
    "deadline-not-later",
    "extension-too-long",
    "self-duplicate",
    "referral-required",
    "invalid-co-units",
    "notice-time-out-of-range",
    "suggestion-accuses-no-one",
}


# Rules of the campaign's records (domain::records::RecordError, 422 with the rule's code): between
# fields, against the clock, or against the campaign, batches, cards and minutes the server holds.
_RECORD_RULES = {
    "phases-out-of-order",
    "campaigns-overlap",
    "outside-campaign",
    "date-in-future",
    "date-before-visit",
    "before-delivery",
    "bad-serial-range",
    "serials-overlap",
    "unknown-serial",
    "not-handed-out",
    "serial-used",
    "already-handed-out",
    "bad-template",
    "opinion-number-taken",
    "opinion-numbers-exhausted",
    "no-such-finding",
    "nothing-to-recheck",
}


_INVALID_COMPLAINANT = re.compile(r"in body - complainant -> (name|phone|id_number):")


def _only_blank_complainant(failure, case) -> bool:
    """The only invalid component named is a complainant field, and it was sent blank."""
    message = str(getattr(failure, "message", ""))
    named = _INVALID_COMPLAINANT.findall(message)
    if not named or message.count("Invalid component") != len(named):
        return False
    complainant = case.body.get("complainant") if isinstance(case.body, dict) else None
    if not isinstance(complainant, dict):
        return False
    return all(isinstance(complainant.get(f), str) and not complainant[f].strip() for f in named)


# Open311's POST requests: rules between fields (a location: lat and long, or address_string) and
# of the service asked for (its attributes, as an admin defined them), answered 400 in the
# spec's error list, each naming its rule.
_OPEN311_RULES = re.compile(
    r"give lat and long, or address_string"
    r"|location: give both lat and long, or neither"
    r"|attribute\[[^\]]*\] (is required|is not defined for this service|takes one value|is not a valid .*)"
)


def _open311_rule(case, response) -> bool:
    if case.operation.label != "POST /open311/v2/requests.{ext}" or response.status_code != 400:
        return False
    try:
        errors = response.json()
    except ValueError:
        return False
    return (
        isinstance(errors, list)
        and bool(errors)
        and all(isinstance(e, dict) and _OPEN311_RULES.fullmatch(str(e.get("description", ""))) for e in errors)
    )


def _match(failure, case, response) -> str | None:
    """The id of the documented exception this failure is, if any."""
    code = getattr(failure, "code", "")
    if code == "ST202" and _open311_rule(case, response):
        return "EX-OPEN311-RULE"
    problem = _problem(response)
    kind = problem.get("code")
    detail = str(problem.get("detail", ""))
    if code == "ST108" and case.operation.label == "GET /api/v1/events/stream":
        return "EX-SSE-EVENT-SCHEMA"
    if code == "ST201" and case.operation.label == "POST /api/v1/cases" and _only_blank_complainant(failure, case):
        return "EX-BLANK-COUNTS-AS-ABSENT"
    if code != "ST202":
        return None
    if_match = _header(case, "If-Match")
    status = response.status_code
    if status == 400 and kind == "invalid-if-match" and if_match is not None and not _IF_MATCH.match(if_match):
        return "EX-IF-MATCH-NOT-AN-ETAG"
    if status == 412 and kind == "precondition-failed" and if_match is not None and _IF_MATCH.match(if_match):
        return "EX-IF-MATCH-STALE"
    if status == 422 and kind == "idempotency-key-reused" and _header(case, "Idempotency-Key") is not None:
        return "EX-IDEMPOTENCY-KEY-REUSED"
    if status == 422 and kind == "unknown-reference":
        return "EX-UNKNOWN-REFERENCE"
    if status == 422 and kind in _STATEFUL_VALUE_RULES:
        return "EX-STATEFUL-VALUE-RULE"
    if status == 422 and kind in _RECORD_RULES:
        return "EX-RECORD-RULE"
    if status == 400 and kind == "invalid-query" and "cursor" in detail and (case.query or {}).get("cursor"):
        return "EX-OPAQUE-CURSOR"
    if status == 400 and kind == "invalid-query":
        messages = {detail}
    elif status == 422 and kind == "validation":
        messages = {str(e.get("message", "")) for e in problem.get("errors") or [] if isinstance(e, dict)}
    else:
        return None
    for exception, allowed in _CROSS_FIELD.items():
        if messages and messages <= allowed:
            return exception
    return None


_recorded: set[tuple[str, str, str]] = set()


@schemathesis.hook
def filter_failure(context, failure, case, response):
    exception = _match(failure, case, response)
    if exception is None or exception not in _DOCUMENTED:
        return True
    key = (exception, case.operation.label, getattr(failure, "code", ""))
    with _lock:
        first = key not in _recorded
        _recorded.add(key)
        with open(os.path.join(OUT_DIR, "exceptions.jsonl"), "a", encoding="utf-8") as f:
            f.write(
                json.dumps(
                    {
                        "exception": exception,
                        "operation": case.operation.label,
                        "code": getattr(failure, "code", ""),
                        "title": getattr(failure, "title", ""),
                        "status": response.status_code,
                        "first": first,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    return False
