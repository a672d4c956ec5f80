"""The ticket lifecycle over HTTP: every action, illegal transitions (409), unit isolation (403),
idempotent intake, overdue listing, review queue and corrections."""

from __future__ import annotations

import concurrent.futures

import pytest

from tests.api.conftest import client

HEATING = {"title": "暖气不热", "channel": "phone",
           "text": "市民来电反映：朝阳区建外街道永安里小区3号楼暖气一直不热，室温只有14度，家里有老人。"}


@pytest.fixture(scope="module")
def keys(make_key, taxonomy):
    street = next(u for u in taxonomy.units.of_kind("street") if u.name == "建外街道")
    other = next(u for u in taxonomy.units.of_kind("street") if u.name == "望京街道")
    dept = taxonomy.units.department(taxonomy.categories.get("城乡建设").owner, "110105")  # owner of the predicted category
    return {"intake": make_key("intake"), "reviewer": make_key("reviewer"), "callback": make_key("callback"),
            "street": make_key("unit", street.id), "other": make_key("unit", other.id),
            "dept": make_key("unit", dept.id), "street_id": street.id, "other_id": other.id, "dept_id": dept.id}


def new_ticket(base_url, keys, body=HEATING, headers=None) -> dict:
    with client(base_url, keys["intake"]) as c:
        response = c.post("/v1/appeals", json=body, headers=headers or {})
    assert response.status_code in (200, 201), response.text
    return response.json()


def act(base_url, key, ticket_id, action, body=None):
    with client(base_url, key) as c:
        return c.post(f"/v1/tickets/{ticket_id}/{action}", json=body or {})


def test_full_loop_accept_whistle_reply_evaluate_close(base_url, keys):
    ticket = new_ticket(base_url, keys)
    tid = ticket["ticket_id"]
    assert ticket["dispatch"]["primary_unit"]["id"] == keys["street_id"]
    assert keys["dept_id"] in [u["id"] for u in ticket["dispatch"]["co_units"]]
    assert act(base_url, keys["street"], tid, "accept").json()["status"] == "accepted"
    assert act(base_url, keys["dept"], tid, "accept").status_code == 200  # the co-unit signs for its part
    assert act(base_url, keys["street"], tid, "whistle", {"unit_ids": [keys["other_id"]], "note": "管线跨界"}).status_code == 200
    assert act(base_url, keys["other"], tid, "report-in").status_code == 200
    assert act(base_url, keys["street"], tid, "note", {"text": "已联系热力公司排查"}).status_code == 200
    replied = act(base_url, keys["street"], tid, "reply", {"text": "已放风排气，室温恢复到20度。", "solved": True})
    assert replied.json()["status"] == "replied"
    evaluated = act(base_url, keys["callback"], tid, "evaluate", {"resolved": True, "satisfaction": "satisfied"})
    assert evaluated.json()["status"] == "evaluated"
    closed = act(base_url, keys["callback"], tid, "close")
    assert closed.json()["status"] == "closed"
    kinds = [e["kind"] for e in closed.json()["events"]]
    assert kinds == ["received", "classified", "dispatched", "accepted", "accepted", "whistled", "reported_in",
                     "noted", "replied", "evaluated", "closed"]
    reopened = act(base_url, keys["reviewer"], tid, "reopen", {"reason": "市民再次来电"})
    assert reopened.json()["status"] == "dispatched"


@pytest.mark.parametrize("action, body", [
    ("reply", {"text": "已处理", "solved": True}),  # not accepted yet
    ("evaluate", {"resolved": True, "satisfaction": "satisfied"}),
    ("close", {}),
    ("whistle", {"unit_ids": ["district:110105"]}),
])
def test_illegal_transitions_answer_409_with_the_state(base_url, keys, action, body):
    tid = new_ticket(base_url, keys)["ticket_id"]
    key = keys["callback"] if action in ("evaluate", "close") else keys["street"]
    response = act(base_url, key, tid, action, body)
    assert response.status_code == 409
    assert response.json()["detail"]["status"] == "dispatched"


def test_units_see_and_act_on_their_own_tickets_only(base_url, keys):
    tid = new_ticket(base_url, keys)["ticket_id"]
    with client(base_url, keys["other"]) as other:
        assert other.get(f"/v1/tickets/{tid}").status_code == 403
        assert other.post(f"/v1/tickets/{tid}/accept", json={}).status_code == 403
        assert other.get("/v1/tickets", params={"unit_id": keys["street_id"]}).status_code == 403
        assert all(t["ticket_id"] != tid for t in other.get("/v1/tickets").json())
    with client(base_url, keys["street"]) as street:
        assert any(t["ticket_id"] == tid for t in street.get("/v1/tickets").json())
    with client(base_url, keys["intake"]) as intake:  # intake may not act
        assert intake.post(f"/v1/tickets/{tid}/assign", json={"primary_unit_id": keys["street_id"]}).status_code == 403


def test_idempotent_intake_returns_the_same_ticket(base_url, keys):
    first = new_ticket(base_url, keys, headers={"Idempotency-Key": "call-20261127-0001"})
    again = new_ticket(base_url, keys, headers={"Idempotency-Key": "call-20261127-0001"})
    assert again["ticket_id"] == first["ticket_id"]
    with client(base_url, keys["intake"]) as c:
        other = c.post("/v1/appeals", json={**HEATING, "text": "别的诉求：望京街道路灯不亮。"},
                       headers={"Idempotency-Key": "call-20261127-0001"})
    assert other.status_code == 409 and "Idempotency-Key" in other.text


def test_an_idempotency_key_is_the_calling_keys_own_and_covers_every_field(base_url, keys, make_key):
    """Two front-ends that happen to send the same key text get two tickets; a retry that changes
    received_at or the caller is not the same request (409), not silently the first ticket."""
    headers = {"Idempotency-Key": "shared-key-7"}
    first = new_ticket(base_url, keys, headers=headers)
    with client(base_url, make_key("intake")) as other_front_end:
        second = other_front_end.post("/v1/appeals", json=HEATING, headers=headers)
    assert second.status_code == 201 and second.json()["ticket_id"] != first["ticket_id"]
    with client(base_url, keys["intake"]) as c:
        moved = c.post("/v1/appeals", json={**HEATING, "received_at": "2026-11-02T09:00:00+08:00"}, headers=headers)
        renamed = c.post("/v1/appeals", json={**HEATING, "caller": {"name": "王先生"}}, headers=headers)
    assert moved.status_code == 409 and renamed.status_code == 409


def test_received_at_in_the_future_is_refused(base_url, keys):
    with client(base_url, keys["intake"]) as c:
        response = c.post("/v1/appeals", json={**HEATING, "received_at": "2999-01-01T09:00:00+08:00"})
    assert response.status_code == 422 and response.json()["detail"]["field"] == "received_at"


def test_concurrent_retries_with_one_key_make_one_ticket(base_url, keys):
    def post(_):
        with client(base_url, keys["intake"]) as c:
            return c.post("/v1/appeals", json=HEATING, headers={"Idempotency-Key": "race-1"}).json()["ticket_id"]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        ids = set(pool.map(post, range(8)))
    assert len(ids) == 1


def test_concurrent_actions_cannot_both_win(base_url, keys):
    tid = new_ticket(base_url, keys)["ticket_id"]
    act(base_url, keys["street"], tid, "accept")

    def reply(i):
        return act(base_url, keys["street"], tid, "reply", {"text": f"答复{i}", "solved": True}).status_code

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(reply, range(4)))
    assert codes.count(200) == 1 and codes.count(409) == 3


def test_return_goes_to_review_and_assign_records_a_correction(base_url, keys, tmp_path):
    tid = new_ticket(base_url, keys)["ticket_id"]
    returned = act(base_url, keys["street"], tid, "return", {"reason": "不属于本街道辖区"})
    assert returned.json()["status"] == "review"
    with client(base_url, keys["reviewer"]) as reviewer:
        queue = reviewer.get("/v1/review/queue").json()
        item = next(i for i in queue if i["ticket_id"] == tid)
        assert item["reasons"] == ["returned"] and item["suggestions"]
        assigned = reviewer.post(f"/v1/tickets/{tid}/assign", json={
            "primary_unit_id": keys["other_id"], "co_unit_ids": [keys["dept_id"]], "category": "城乡建设/供暖",
            "urgency": 2})
        assert assigned.status_code == 200 and assigned.json()["status"] == "dispatched"
        assert assigned.json()["dispatch"]["primary_unit"]["id"] == keys["other_id"]
        assert all(i["ticket_id"] != tid for i in reviewer.get("/v1/review/queue").json())
    events = assigned.json()["events"]
    assert events[-1]["kind"] == "assigned" and events[-1]["payload"]["corrected"] is True


@pytest.mark.parametrize("action, body, field", [
    ("assign", {"primary_unit_id": "street:000"}, "primary_unit_id"),
    ("assign", {"primary_unit_id": "district:110105", "category": "外星事务"}, "category"),
    ("assign", {"primary_unit_id": "district:110105", "urgency": 7}, "urgency"),
    ("return", {}, "reason"),
])
def test_bad_action_bodies_name_the_field(base_url, keys, action, body, field):
    tid = new_ticket(base_url, keys)["ticket_id"]
    key = keys["reviewer"] if action == "assign" else keys["street"]
    response = act(base_url, key, tid, action, body)
    assert response.status_code == 422 and response.json()["detail"]["field"] == field


@pytest.mark.parametrize("body, field", [
    ({}, "text"), ({"text": "   "}, "text"), ({"text": "x" * 20001}, "text"),
    ({"text": "路灯坏了", "channel": "fax"}, "channel"),
    ({"text": "路灯坏了", "received_at": "2026-11-27T09:00:00"}, "received_at"),
    ({"text": "路灯坏了", "caller": {"phone": "call me"}}, "phone"),
    ({"text": "路灯坏了", "received_at": "0001-01-01T00:00:00+01:00"}, "out of range"),
])
def test_bad_intake_is_422_naming_the_field(base_url, keys, body, field):
    with client(base_url, keys["intake"]) as c:
        response = c.post("/v1/appeals", json=body)
    assert response.status_code == 422 and field in response.text


def test_a_lone_surrogate_is_422_not_a_crash(base_url, keys):
    with client(base_url, keys["intake"]) as c:
        response = c.post("/v1/appeals", content=b'{"text": "\\u8def\\u706f\\ud800"}',
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "unicode" in response.text.lower() and "text" in response.text


def test_only_admin_may_set_the_time(base_url, keys):
    with client(base_url, keys["intake"]) as c:
        response = c.post("/v1/appeals", json={**HEATING, "at": "2026-10-01T09:00:00+08:00"})
    assert response.status_code == 403 and "at" in response.text


def test_missing_or_wrong_key_is_401(base_url):
    with client(base_url, None) as c:
        assert c.get("/v1/tickets").status_code == 401
    with client(base_url, "jsk_nope") as c:
        assert c.get("/v1/tickets").status_code == 401


def test_overdue_tickets_are_listed_and_supervised(base_url, keys, admin, service, taxonomy):
    from datetime import datetime, timedelta, timezone

    long_ago = (datetime.now(timezone.utc) - timedelta(days=30)).isoformat()
    created = admin.post("/v1/appeals", json={**HEATING, "received_at": long_ago, "at": long_ago})
    tid = created.json()["ticket_id"]
    overdue = admin.get("/v1/tickets", params={"overdue": "true", "limit": 1000}).json()
    assert tid in [t["ticket_id"] for t in overdue]
    from serving.services.tickets import TicketService

    state = service[1].state.jiesu
    with state.sessions() as session:
        flagged = TicketService(session, state.taxonomy, None, None).supervise()
        assert tid in flagged
        assert tid not in TicketService(session, state.taxonomy, None, None).supervise()  # once per deadline
    supervised = [e["payload"] for e in admin.get(f"/v1/tickets/{tid}").json()["events"] if e["kind"] == "supervised"]
    # 30 days late on both deadlines: flagged for each, and raised to the district and the city
    assert {(p["overdue"], p["level"]) for p in supervised} >= {
        ("respond", "unit"), ("respond", "district"), ("respond", "city"), ("resolve", "unit")}
    city = next(p for p in supervised if p["level"] == "city")
    district = next(p for p in supervised if p["level"] == "district")
    assert city["escalated_to"] == "city" and district["escalated_to"].startswith("district:")


def test_a_ticket_waiting_for_review_has_a_deadline_and_is_supervised(admin, service):
    from datetime import datetime, timedelta, timezone

    from serving.services.tickets import TicketService

    earlier = (datetime.now(timezone.utc) - timedelta(hours=5)).isoformat()
    tid = admin.post("/v1/appeals", json={"text": "楼下的路灯坏了好几天了，晚上很黑。", "received_at": earlier,
                                          "at": earlier}).json()["ticket_id"]  # no place named: review
    assert admin.get(f"/v1/tickets/{tid}").json()["status"] == "review"
    state = service[1].state.jiesu
    with state.sessions() as session:
        assert tid in TicketService(session, state.taxonomy, None, None).supervise()
    events = admin.get(f"/v1/tickets/{tid}").json()["events"]
    queued = next(e for e in events if e["kind"] == "queued_for_review")
    assert queued["payload"]["review_by"]
    assert any(e["kind"] == "supervised" and e["payload"]["overdue"] == "review" for e in events)
    queue = {item["ticket_id"]: item for item in admin.get("/v1/review/queue", params={"limit": 1000}).json()}
    reasons = set(queue[tid]["reasons"])
    assert "review_overdue" in reasons and set(queued["payload"]["reasons"]) <= reasons  # every reason it waits


def test_mark_unreasonable_after_the_callback(base_url, keys):
    tid = new_ticket(base_url, keys)["ticket_id"]
    act(base_url, keys["street"], tid, "accept")
    act(base_url, keys["street"], tid, "reply", {"text": "已答复", "solved": False})
    act(base_url, keys["callback"], tid, "evaluate", {"resolved": False, "satisfaction": "dissatisfied"})
    marked = act(base_url, keys["reviewer"], tid, "mark-unreasonable", {"reason": "诉求人要求超出政策规定"})
    assert marked.status_code == 200 and marked.json()["unreasonable"] is True
