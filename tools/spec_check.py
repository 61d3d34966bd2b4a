"""The spec check: the OpenAPI document the service serves, seen as a third party sees it.

Usage: spec_check.py SPEC.json OUT_DIR (scripts/spec-check.sh runs it with tools/.venv's Python).

1. pins       the tools installed are exactly those pinned in tools/requirements.txt;
2. lint       openapi-spec-validator: the document is valid OpenAPI 3.1 and every $ref resolves;
3. generate   openapi-python-client generates a client, with no warning (it skips an operation
              it cannot understand, with a warning, as it did GET /ledger with a dangling $ref);
4. operations the client has a function for every operation of the spec (method and path);
5. import     every module of the client imports.

Prints one line per check and closes with `spec-check: N passed, M failed`; exits 1 on a failure.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import pathlib
import re
import subprocess
import sys

TOOLS = pathlib.Path(__file__).resolve().parent
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def short(text: str, limit: int = 400) -> str:
    """A message cut short (the validator's messages may quote the whole document)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + " …"


def check_pins() -> list[str]:
    problems = []
    for line in (TOOLS / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, want = line.partition("==")
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            have = None
        if have != want:
            problems.append(f"{name}: pinned {want}, installed {have} (run `make spec-tools`)")
    return problems


def check_lint(spec_path: pathlib.Path) -> list[str]:
    from openapi_spec_validator import OpenAPIV31SpecValidator
    from openapi_spec_validator.readers import read_from_filename

    spec, _ = read_from_filename(str(spec_path))
    if not str(spec.get("openapi", "")).startswith("3.1"):
        return [f"expected OpenAPI 3.1, found {spec.get('openapi')!r}"]
    try:
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {short(e.message)}"
            for e in OpenAPIV31SpecValidator(spec).iter_errors()
        ]
    except Exception as e:  # an unresolvable $ref stops the validator with an exception
        return [f"{type(e).__name__}: {short(str(e).split(' within ', 1)[0])}"]


def generate(spec_path: pathlib.Path, out: pathlib.Path) -> list[str]:
    exe = pathlib.Path(sys.executable).parent / "openapi-python-client"
    cmd = [
        str(exe), "generate", "--path", str(spec_path), "--meta", "none", "--overwrite",
        "--output-path", str(out / "huiyin_client"), "--config", str(TOOLS / "openapi-python-client.yaml"),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    text = (r.stdout + r.stderr).strip()
    if r.returncode != 0:
        return [f"the generator failed (exit {r.returncode}): {short(text, 2000)}"]
    if re.search(r"warning|error", text, re.IGNORECASE):
        return [f"the generator warned: {short(text, 2000)}"]
    return []


def spec_operations(spec: dict) -> set[tuple[str, str]]:
    return {(m, path) for path, item in spec.get("paths", {}).items() for m in item if m in METHODS}


def client_operations(package: pathlib.Path) -> set[tuple[str, str]]:
    # Each endpoint module builds its request in `_get_kwargs`: {"method": "get", "url": "/api/…"…}.
    found = set()
    pattern = re.compile(r'"method":\s*"(\w+)",\s*"url":\s*f?"([^"]*)"')
    for f in sorted((package / "api").rglob("*.py")):
        for m, url in pattern.findall(f.read_text(encoding="utf-8")):
            found.add((m.lower(), url))
    return found


def check_operations(spec_path: pathlib.Path, out: pathlib.Path) -> tuple[list[str], int]:
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    want = spec_operations(spec)
    have = client_operations(out / "huiyin_client")
    missing = sorted(want - have)
    extra = sorted(have - want)
    problems = [f"no client function for {m.upper()} {p}" for m, p in missing]
    problems += [f"a client function for {m.upper()} {p}, which the spec does not have" for m, p in extra]
    if len(want) < 20:
        problems.append(f"the spec has only {len(want)} operations")
    return problems, len(want)


def check_import(out: pathlib.Path) -> tuple[list[str], int]:
    sys.path.insert(0, str(out))
    problems, count = [], 0
    for f in sorted((out / "huiyin_client").rglob("*.py")):
        rel = f.relative_to(out).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        try:
            importlib.import_module(name)
            count += 1
        except Exception as e:
            problems.append(f"{name}: {type(e).__name__}: {short(e)}")
    return problems, count


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    spec_path, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    passed = failed = 0

    def report(name: str, problems: list[str], detail: str = "") -> bool:
        nonlocal passed, failed
        if problems:
            failed += 1
            print(f"spec-check: {name}: FAILED")
            for p in problems:
                print(f"  - {p}")
            return False
        passed += 1
        print(f"spec-check: {name}: ok{(' (' + detail + ')') if detail else ''}")
        return True

    report("pins", check_pins(), "tools/requirements.txt")
    report("lint", check_lint(spec_path), f"openapi-spec-validator {importlib.metadata.version('openapi-spec-validator')}")
    report("generate", generate(spec_path, out), f"openapi-python-client {importlib.metadata.version('openapi-python-client')}")
    # A client generated with warnings is still checked: the warning names what it skipped, the
    # operations check names what the client lacks.
    if (out / "huiyin_client" / "api").is_dir():
        problems, n = check_operations(spec_path, out)
        report("operations", problems, f"{n} operations, each with a client function")
        problems, n = check_import(out)
        report("import", problems, f"{n} modules")
    else:
        for name in ("operations", "import"):
            failed += 1
            print(f"spec-check: {name}: FAILED (no client was generated)")
    print(f"spec-check: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
