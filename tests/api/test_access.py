"""Least privilege: every route of the OpenAPI (and every /ui page) called with every role, against the
one role table (``serving.api.access``); what each role sees of a ticket (``serving.domain.privacy``);
units that no longer have a ticket, the intake desk's own tickets, keys that expire and are revoked."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from serving.api.access import ACCESS, ROLES, allowed, markdown
from serving.domain.privacy import VIEWS
from tests.api.conftest import client

ROOT = Path(__file__).resolve().parents[2]
SECRET_TEXT = "朝阳区建外街道永安里小区3号楼暖气不热，我电话13912345678，身份证110105199001011234。"
BODIES = {
    "POST /v1/appeals": {"text": SECRET_TEXT},
    "POST /v1/tickets/{ticket_id}/return": {"reason": "不归我们管"},
    "POST /v1/tickets/{ticket_id}/assign": {"primary_unit_id": "{street}"},
    "POST /v1/tickets/{ticket_id}/whistle": {"unit_ids": ["{street}"], "note": "请来"},
    "POST /v1/tickets/{ticket_id}/note": {"text": "已联系"},
    "POST /v1/tickets/{ticket_id}/reply": {"text": "已修好", "solved": True},
    "POST /v1/tickets/{ticket_id}/evaluate": {"resolved": True, "satisfaction": "satisfied"},
    "POST /v1/tickets/{ticket_id}/mark-unreasonable": {"reason": "无理诉求"},
    "POST /v1/units/import": {"streets": [{"code": "110105999001", "name": "测试街道", "district_code": "110105"}]},
    "POST /v1/units/{unit_id}/merge": {"into": "street:110105001"},
    "POST /v1/topics": {"month": "2026-11", "category": "城乡建设"},
    "POST /v1/ledger/sync": {"from": "2026-11-01T00:00:00+08:00", "to": "2026-11-02T00:00:00+08:00"},
    "POST /v1/ledger/{entry_id}/close": {"note": "已办结"},
    "POST /v1/models/reload": {},
    "POST /v1/keys": {"role": "analyst", "label": "测试"},
}
QUERY = {"from": "2026-11-01", "to": "2026-11-02", "month": "2026-11", "date": "2026-11-02"}


@pytest.fixture(scope="module")
def world(make_key, taxonomy, base_url):
    street = next(u for u in taxonomy.units.of_kind("street") if u.name == "建外街道")
    keys = {role: make_key(role) for role in ROLES if role != "unit"}
    keys["unit"] = make_key("unit", street.id)
    return {"keys": keys, "street": street.id}


def new_ticket(base_url, world) -> dict:
    world["n"] = world.get("n", 0) + 1  # the same caller saying the same again would be a closed repeat
    with client(base_url, world["keys"]["intake"]) as c:
        response = c.post("/v1/appeals", json={"title": "暖气不热", "text": SECRET_TEXT + f"（第{world['n']}次反映）",
                                               "caller": {"name": "张三", "phone": "13912345678"}})
    assert response.status_code == 201, response.text
    ticket = response.json()
    with client(base_url) as admin:  # whatever the model read, the ticket is with the test's street
        assigned = admin.post(f"/v1/tickets/{ticket['ticket_id']}/assign", json={"primary_unit_id": world["street"]})
    assert assigned.status_code == 200, assigned.text
    return assigned.json()


def routes(app) -> list[str]:
    spec = app.openapi()
    return [f"{method.upper()} {path}" for path, ops in spec["paths"].items() for method in ops]


def test_every_route_has_a_row_in_the_role_table(service):
    missing = [r for r in routes(service[1]) if r not in ACCESS]
    assert not missing, f"add these routes to serving/api/access.py: {missing}"


def test_the_docs_print_the_role_table_and_the_views():
    doc = (ROOT / "docs" / "PRIVACY.md").read_text(encoding="utf-8")
    assert markdown() in doc
    for role, view in VIEWS.items():
        assert f"| {role} | {view.text} | {'yes' if view.caller else 'no'} |" in doc


def _call(base_url, route, role, world, ticket_id, throwaway_key_id):
    method, path = route.split(" ", 1)
    path = path.format(ticket_id=ticket_id, unit_id="street:110105999001", topic_id=1, entry_id=1,
                       key_id=throwaway_key_id, kind="daily", service_code="c00000000",
                       service_request_id=ticket_id)
    body = BODIES.get(route, {} if method == "POST" else None)
    if body:
        body = {k: [x.format(street=world["street"]) for x in v] if isinstance(v, list) and v and isinstance(v[0], str)
                else v.format(street=world["street"]) if isinstance(v, str) and "{street}" in v else v
                for k, v in body.items()}
    key = world["keys"].get(role) if role else None
    if path.startswith("/ui/"):
        with httpx.Client(base_url=base_url, cookies={"jiesu_key": key} if key else {}, timeout=30,
                          follow_redirects=False) as c:
            response = c.request(method, path, data={"primary_unit": "建外街道（朝阳区）"} if method == "POST" else None)
        if response.status_code == 303 and response.headers["location"].startswith("/ui/login"):
            return 401
        return response.status_code
    with client(base_url, key) as c:
        response = c.request(method, path, params=QUERY if method == "GET" else None, json=body)
    return response.status_code


def test_every_route_answers_every_role_as_the_table_says(service, base_url, world, make_key):
    wrong = []
    for route in list(routes(service[1])) + [r for r in ACCESS if " /ui/" in r]:
        for role in (None, *ROLES):
            ticket = new_ticket(base_url, world)
            make_key("analyst")  # a key the revoke route may revoke
            with client(base_url) as admin:
                throwaway_id = max(k["id"] for k in admin.get("/v1/keys").json())
            code = _call(base_url, route, role, world, ticket["ticket_id"], throwaway_id)
            expected_refusal = 401 if role is None else 403
            if allowed(route, role):
                if code in (401, 403) or code >= 500:
                    wrong.append((route, role, code, "should be allowed"))
            elif code != expected_refusal:
                wrong.append((route, role, code, f"should be {expected_refusal}"))
    assert not wrong, "\n".join(map(str, wrong))


def test_each_role_sees_the_text_and_the_caller_as_the_views_say(base_url, world):
    ticket = new_ticket(base_url, world)
    for role, view in VIEWS.items():
        with client(base_url, world["keys"][role]) as c:
            seen = c.get(f"/v1/tickets/{ticket['ticket_id']}").json()
        masked = "13912345678" not in seen["text"] and "139****5678" in seen["text"]
        assert masked == (view.text == "masked"), role
        assert "110105199001011234" not in seen["text"] or view.text == "full", role
        assert (seen["caller"] is not None) == view.caller, role
        if view.caller:
            assert seen["caller"]["phone"] == "13912345678"


def test_reports_hotspots_and_the_review_queue_show_masked_text(base_url, world):
    with client(base_url, world["keys"]["reviewer"]) as c:
        for _ in range(3):  # a hotspot needs three
            new_ticket(base_url, world)
        queue = c.get("/v1/review/queue").json()
        day = datetime.now(timezone(timedelta(hours=8))).date()
        hotspots = c.get("/v1/analytics/hotspots", params={"from": str(day - timedelta(days=1)),
                                                           "to": str(day + timedelta(days=1))})
        report = c.get("/v1/reports/daily", params={"date": str(day)})
    for text in [item["text"] for item in queue] + [hotspots.text, report.text]:
        assert "13912345678" not in text and "110105199001011234" not in text


def test_a_unit_that_no_longer_has_a_ticket_sees_its_own_part_only(base_url, world, make_key, taxonomy):
    ticket = new_ticket(base_url, world)
    tid = ticket["ticket_id"]
    unit = world["keys"]["unit"]
    other = next(u for u in taxonomy.units.of_kind("street") if u.name == "望京街道")
    other_key = make_key("unit", other.id)
    with client(base_url, unit) as c:
        assert c.post(f"/v1/tickets/{tid}/return", json={"reason": "不在我街道"}).status_code == 200
    with client(base_url, world["keys"]["reviewer"]) as c:
        assert c.post(f"/v1/tickets/{tid}/assign", json={"primary_unit_id": other.id}).status_code == 200
    with client(base_url, other_key) as c:
        assert c.post(f"/v1/tickets/{tid}/accept", json={}).status_code == 200
        assert c.post(f"/v1/tickets/{tid}/note", json={"text": "望京已联系居民"}).status_code == 200
    with client(base_url, unit) as c:
        seen = c.get(f"/v1/tickets/{tid}").json()
        kinds = [e["kind"] for e in seen["events"]]
        assert "returned" in kinds and "noted" not in kinds and "accepted" not in kinds
        assert tid not in [t["ticket_id"] for t in c.get("/v1/tickets").json()]
        assert c.post(f"/v1/tickets/{tid}/note", json={"text": "再看看"}).status_code == 403


def test_the_intake_desk_reads_only_the_tickets_it_received(base_url, world, make_key):
    ticket = new_ticket(base_url, world)
    other_desk = make_key("intake")
    with client(base_url, other_desk) as c:
        assert c.get(f"/v1/tickets/{ticket['ticket_id']}").status_code == 403
        mine = c.post("/v1/appeals", json={"text": "望京街道路灯不亮。"}).json()
        assert [t["ticket_id"] for t in c.get("/v1/tickets").json()] == [mine["ticket_id"]]
    with client(base_url, world["keys"]["intake"]) as c:
        assert c.get(f"/v1/tickets/{ticket['ticket_id']}").status_code == 200


def test_keys_expire_and_a_revoked_key_is_refused_at_once(base_url):
    with client(base_url) as admin:
        soon = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat()
        made = admin.post("/v1/keys", json={"role": "analyst", "label": "外包分析", "expires_at": soon})
        assert made.status_code == 201 and made.json()["state"] == "active"
        key, key_id = made.json()["key"], made.json()["id"]
        assert key[4:12] not in str(admin.get("/v1/keys").json())  # no piece of the secret is kept
        second = admin.post("/v1/keys", json={"role": "reviewer"}).json()
        with client(base_url, second["key"]) as c:
            assert c.get("/v1/review/queue").status_code == 200
            assert admin.post(f"/v1/keys/{second['id']}/revoke").json()["state"] == "revoked"
            assert c.get("/v1/review/queue").status_code == 401
        with client(base_url, key) as c:
            assert c.get("/v1/analytics/volume", params=QUERY).status_code == 200
            import time

            time.sleep(2.2)
            assert c.get("/v1/analytics/volume", params=QUERY).status_code == 401
        listed = {k["id"]: k["state"] for k in admin.get("/v1/keys", params={"include_revoked": True}).json()}
        assert listed[key_id] == "expired" and listed[second["id"]] == "revoked"
        past = admin.post("/v1/keys", json={"role": "analyst", "expires_at": "2020-01-01T00:00:00+08:00"})
        assert past.status_code == 422 and past.json()["detail"]["field"] == "expires_at"
