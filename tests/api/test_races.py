"""Correct under races, on SQLite and PostgreSQL: many clerks sending appeals about one problem in one
street at the same moment make one group whose size is its members; two reviewers reassigning one
ticket at once, or two units acting on it, never get a 500 — the loser gets 409 with the ticket's state,
or waits its turn, and the timeline holds exactly the actions that were answered 200."""

from __future__ import annotations

import threading

from tests.api.conftest import ADMIN_KEY, client

AT = "2026-09-14T20:{m:02d}:00+08:00"


def together(n: int, call) -> list:
    """Run ``call(i)`` in n threads released at the same instant; their results in order."""
    barrier, results = threading.Barrier(n), [None] * n

    def run(i):
        barrier.wait()
        results[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_sixteen_appeals_at_once_about_one_problem_make_one_group_of_the_right_size(service, base_url):
    from sqlalchemy import func, select

    from serving.store.models import AppealGroupRow, TicketRow

    def send(i):
        with client(base_url, ADMIN_KEY) as c:
            return c.post("/v1/appeals", json={
                "text": f"朝阳区望京街道望京西园四区楼下烧烤摊油烟太大，晚上十一点还在营业，{i + 1}号楼居民家里全是烟味。",
                "received_at": AT.format(m=i), "at": AT.format(m=i)})

    responses = together(16, send)
    assert [r.status_code for r in responses] == [201] * 16, [r.text for r in responses if r.status_code != 201]
    tickets = [r.json() for r in responses]
    groups = {t["group_id"] for t in tickets if t["group_id"] is not None}
    with client(base_url) as admin:
        stored = [admin.get(f"/v1/tickets/{t['ticket_id']}").json() for t in tickets]
    groups = {s["group_id"] for s in stored}
    assert len(groups) == 1 and None not in groups, groups  # one problem in one place: one group, all in it
    (group,) = groups
    with service[1].state.jiesu.sessions() as session:
        size = session.get(AppealGroupRow, group).size
        members = session.scalar(select(func.count()).select_from(TicketRow).where(TicketRow.group_id == group))
    assert size == members == 16


def test_two_reviewers_reassigning_one_ticket_at_once_one_wins_the_other_gets_409(base_url, taxonomy):
    streets = [u.id for u in taxonomy.units.of_kind("street") if u.name in ("建外街道", "望京街道")][:2]
    with client(base_url) as admin:
        ticket = admin.post("/v1/appeals", json={"text": "朝阳区建外街道永安里小区暖气不热，室温只有十四度。"}).json()
        admin.post(f"/v1/tickets/{ticket['ticket_id']}/assign", json={"primary_unit_id": streets[0]})
        before = admin.get(f"/v1/tickets/{ticket['ticket_id']}").json()["events"]

    def reassign(i):
        with client(base_url) as c:
            return c.post(f"/v1/tickets/{ticket['ticket_id']}/assign", json={"primary_unit_id": streets[i % 2]})

    responses = together(6, reassign)
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 409} and 200 in codes, [r.text for r in responses if r.status_code not in (200, 409)]
    for r in responses:
        if r.status_code == 409:
            assert r.json()["detail"]["status"] == "dispatched"  # the loser is told the state
    with client(base_url) as admin:
        events = admin.get(f"/v1/tickets/{ticket['ticket_id']}").json()["events"]
    assigned = [e for e in events if e["kind"] == "assigned"]
    assert len(assigned) - len([e for e in before if e["kind"] == "assigned"]) == codes.count(200)


def test_a_unit_accepting_twice_at_once_accepts_once(base_url, make_key, taxonomy):
    street = next(u for u in taxonomy.units.of_kind("street") if u.name == "建外街道")
    key = make_key("unit", street.id)
    with client(base_url) as admin:
        ticket = admin.post("/v1/appeals", json={"text": "朝阳区建外街道光华路路灯不亮了。"}).json()
        assert admin.post(f"/v1/tickets/{ticket['ticket_id']}/assign",
                          json={"primary_unit_id": street.id}).status_code == 200

    def accept(_):
        with client(base_url, key) as c:
            return c.post(f"/v1/tickets/{ticket['ticket_id']}/accept", json={})

    codes = [r.status_code for r in together(4, accept)]
    assert codes.count(200) == 1 and set(codes) <= {200, 409}, codes
    with client(base_url) as admin:
        events = admin.get(f"/v1/tickets/{ticket['ticket_id']}").json()["events"]
    assert [e["kind"] for e in events].count("accepted") == 1
