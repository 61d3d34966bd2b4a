"""Reference data and cases for the Schemathesis run (scripts/schemathesis.sh), through the HTTP API.

    seed.py reference BASE_URL STATE_FILE   units and categories (as admin)
    seed.py cases BASE_URL STATE_FILE       cases of departments A and B (clerk, supervisor, handlers)

Reads the tokens the script minted from the environment (ST_TOKEN_ADMIN, ST_TOKEN_CLERK,
ST_TOKEN_SUPERVISOR, ST_TOKEN_HANDLER_A, ST_TOKEN_HANDLER_B; the handlers' tokens need the unit
ids, so they are minted between the two steps) and writes STATE_FILE (JSON): the unit ids (town,
villages, departments A and B), the category ids and the case ids of each department, which
tools/hostile/hooks.py feeds into the run. Every request must succeed; anything else stops the
script.
"""

from __future__ import annotations

import json
import os
import sys

import requests


class Api:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False  # never through a proxy: the server is local

    def call(self, method: str, path: str, token: str, body: object | None = None, want: int = 200) -> dict:
        r = self.session.request(
            method,
            f"{self.base}{path}",
            headers={"Authorization": f"Bearer {token}"},
            json=body,
            timeout=30,
        )
        if r.status_code != want:
            sys.exit(f"seed: {method} {path} answered {r.status_code} (wanted {want}): {r.text[:500]}")
        return r.json() if r.content else {}


def reference(api: Api, state_file: str) -> None:
    admin = os.environ["ST_TOKEN_ADMIN"]

    def unit(name: str, kind: str, parent: str | None) -> str:
        return api.call("POST", "/api/v1/units", admin, {"name": name, "kind": kind, "parent_id": parent}, 201)["id"]

    town = unit("青山镇", "town", None)
    villages = [unit(n, "village", town) for n in ("东岭村", "西岭村")]
    dept_a = unit("卫生院", "department", town)
    dept_b = unit("教育办", "department", town)

    def category(code: str, name: str, kind: str, default_unit: str) -> str:
        body = {
            "code": code,
            "name": name,
            "kind": kind,
            "default_unit_id": default_unit,
            "deadline_policy": {"handle": {"unit": "working_days", "value": 10}},
        }
        return api.call("POST", "/api/v1/categories", admin, body, 201)["id"]

    categories = [
        category("health.clinic", "村卫生室服务", "complaint", dept_a),
        category("education.school", "校车安全", "suggestion", dept_b),
    ]
    # 归口: each category routes to its department, so an assignment without a unit finds a rule.
    for cat, dept in zip(categories, (dept_a, dept_b)):
        api.call("PUT", "/api/v1/routing-rules", admin, {"category_id": cat, "unit_id": dept})
    state = {"town": town, "villages": villages, "dept_a": dept_a, "dept_b": dept_b, "categories": categories}
    with open(state_file, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1)
    print(
        f"seed: units (town, {len(villages)} villages, departments A and B), {len(categories)} categories "
        "with their routing rules"
    )


def seed_cases(api: Api, state_file: str) -> None:
    clerk = os.environ["ST_TOKEN_CLERK"]
    sup = os.environ["ST_TOKEN_SUPERVISOR"]
    with open(state_file, encoding="utf-8") as f:
        state = json.load(f)
    villages, categories = state["villages"], state["categories"]
    dept_a, dept_b = state["dept_a"], state["dept_b"]

    def case(title: str, description: str, village: str, cat: str, accused: str | None = None) -> str:
        body = {
            "channel": "symposium",
            "kind": "complaint",
            "title": title,
            "description": description,
            "village_id": village,
            "category_id": cat,
            "complainant": {"name": "张三", "phone": "13812345678"},
        }
        if accused:
            body["accused_unit_id"] = accused
        return api.call("POST", "/api/v1/cases", clerk, body, 201)["id"]

    def assign(case_id: str, unit_id: str) -> None:
        api.call("POST", f"/api/v1/cases/{case_id}/assign", sup, {"unit_id": unit_id})

    cases: dict[str, list[str]] = {"a": [], "b": []}
    for i in range(6):
        for key, dept, cat in (("a", dept_a, categories[0]), ("b", dept_b, categories[1])):
            cid = case(
                f"村卫生室夜间无人值班{i}" if key == "a" else f"校车超载接送学生{i}",
                "座谈会上村民代表反映：问题已持续三个月，多次反映无人处理。",
                villages[i % 2],
                cat,
            )
            assign(cid, dept)
            cases[key].append(cid)
    # 回避: a case accusing department A, handled by B. Handler A must never see it.
    accused_a = case("卫生院收费不透明", "村民反映卫生院乱收费，要求公开收费标准。", villages[0], categories[0], accused=dept_a)
    assign(accused_a, dept_b)
    cases["b"].append(accused_a)
    # Some cases further along, so more commands find them in a state that accepts them.
    handler_tokens = {"a": os.environ["ST_TOKEN_HANDLER_A"], "b": os.environ["ST_TOKEN_HANDLER_B"]}
    for key in ("a", "b"):
        token = handler_tokens[key]
        ids = cases[key]
        api.call("POST", f"/api/v1/cases/{ids[1]}/sign", token, {})
        api.call("POST", f"/api/v1/cases/{ids[2]}/sign", token, {})
        api.call("POST", f"/api/v1/cases/{ids[2]}/handle", token, {"outcome": "resolved", "result": "已安排专人夜间值班"})
        api.call("POST", f"/api/v1/cases/{ids[3]}/sign", token, {})
        api.call("POST", f"/api/v1/cases/{ids[3]}/handle", token, {"outcome": "resolved", "result": "已整改"})
        api.call("POST", f"/api/v1/cases/{ids[3]}/feedback", token, {"method": "phone", "content": "已电话告知反映人"})

    state.update({"cases_a": cases["a"], "cases_b": cases["b"], "accused_a": accused_a})
    with open(state_file, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1)
    print(f"seed: {len(cases['a'])} cases of A, {len(cases['b'])} of B (one of B's accuses A)")


def main() -> None:
    step, base, state_file = sys.argv[1], sys.argv[2], sys.argv[3]
    api = Api(base)
    if step == "reference":
        reference(api, state_file)
    elif step == "cases":
        seed_cases(api, state_file)
    else:
        sys.exit(f"seed: unknown step {step!r} (reference or cases)")


if __name__ == "__main__":
    main()
