"""One role's Schemathesis figures (scripts/schemathesis.sh).

    summarize.py ROLE REPORT_DIR EXIT_CODE SECONDS

Reads REPORT_DIR/report.json (Schemathesis' JSON report) and REPORT_DIR/exceptions.jsonl (the
failures tools/hostile/hooks.py dropped as documented exceptions), prints the role's figures,
failures and exceptions, and writes REPORT_DIR/summary.txt with the one line
`schemathesis <role>: N operations, M test cases, F failures`, where F counts the failures and
errors that are not documented exceptions. Exits 1 when F > 0 or the run did not complete.
"""

from __future__ import annotations

import collections
import json
import os
import sys


def main() -> int:
    role, folder, exit_code, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    report_path = os.path.join(folder, "report.json")
    try:
        with open(report_path, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError) as exc:
        print(f"  {role}: no report ({exc}); see {folder}/output.txt")
        with open(os.path.join(folder, "summary.txt"), "w", encoding="utf-8") as f:
            f.write(f"schemathesis {role}: 0 operations, 0 test cases, 1 failures\n")
        return 1

    operations = (report.get("operations") or {}).get("tested", 0)
    generated = report["test_cases"]["generated"]
    failures = report.get("failures") or []
    errors = report.get("errors") or []
    failed = sum(group["count"] for group in failures) + sum(group["count"] for group in errors)

    dropped: collections.Counter[tuple[str, str]] = collections.Counter()
    operations_by_exception: dict[str, set[str]] = collections.defaultdict(set)
    try:
        with open(os.path.join(folder, "exceptions.jsonl"), encoding="utf-8") as f:
            for line in f:
                item = json.loads(line)
                dropped[(item["exception"], item["code"])] += 1
                operations_by_exception[item["exception"]].add(item["operation"])
    except FileNotFoundError:
        pass

    complete = report.get("complete", False)
    print(
        f"  {role}: {operations} operations tested, {generated} test cases generated, "
        f"{failed} failures ({seconds} s, exit code {exit_code}{'' if complete else ', INCOMPLETE'})"
    )
    for group in failures:
        print(f"    FAIL {group['code']} {group['title']} ({group['count']}): {', '.join(group['operations'])}")
    for group in errors:
        print(f"    ERROR {group['title']} ({group['count']})")
    for (exception, code), count in sorted(dropped.items()):
        ops = sorted(operations_by_exception[exception])
        shown = ", ".join(ops[:4]) + (f" and {len(ops) - 4} more" if len(ops) > 4 else "")
        print(f"    documented exception {exception} ({code}, {count} dropped): {shown}")
    try:
        with open(os.path.join(folder, "cross-unit.json"), encoding="utf-8") as f:
            cross = json.load(f)
        print(
            f"    object-level authorisation: {cross['cases_replayed']} cases of {role}'s unit "
            f"({cross['case_versions_replayed']} versions, after {cross['distinct_2xx_requests']} distinct 2xx "
            f"requests) read back as {cross['peer']}: {cross['peer_reads']} reads, every one must be 404"
        )
    except FileNotFoundError:
        pass
    if failed:
        print(f"    details and reproductions: {folder}/output.txt")

    line = f"schemathesis {role}: {operations} operations, {generated} test cases, {failed} failures"
    with open(os.path.join(folder, "summary.txt"), "w", encoding="utf-8") as f:
        f.write(line + "\n")
    ok = failed == 0 and exit_code == 0 and complete
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
