"""Group appeals (群体性诉求) and repeats at intake, over HTTP."""

from __future__ import annotations

import pytest


def post(admin, text, at, phone=None, title=""):
    body = {"title": title, "text": text, "received_at": at, "at": at}
    if phone:
        body["caller"] = {"phone": phone}
    response = admin.post("/v1/appeals", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_noise_complaints_from_one_street_form_a_group_that_raises_urgency(admin):
    day = "2026-08-12T{h:02d}:{m:02d}:00+08:00"
    tickets = [post(admin, f"市民来电：朝阳区望京街道望京西园三区楼下广场舞音响声音太大，晚上十点还在放，{i + 2}号楼居民没法休息。",
                    day.format(h=19 + i // 6, m=(i % 6) * 10)) for i in range(12)]
    other = post(admin, "朝阳区望京街道望京西园三区门口共享单车乱停放，人行道走不了。", day.format(h=20, m=5))
    assert tickets[0]["classification"]["urgency"] == 3 and tickets[0]["group_id"] is None  # alone at first
    group = tickets[1]["group_id"]
    assert group is not None and all(t["group_id"] == group for t in tickets[1:])
    assert other["group_id"] is None  # same place, another problem
    first = admin.get(f"/v1/tickets/{tickets[0]['ticket_id']}").json()
    assert first["group_id"] == group and first["group_appeal"] is True  # 5 or more: a group appeal for the bonus
    assert first["classification"]["urgency"] == 2  # 10 or more: raised to 紧急
    raised = [e for e in first["events"] if e["kind"] == "urgency_raised"]
    assert raised and raised[0]["payload"]["from"] == 3 and raised[0]["payload"]["to"] == 2
    assert tickets[3]["group_appeal"] is False and tickets[4]["group_appeal"] is True  # the fifth makes it a group


def test_a_repeat_from_the_same_caller_is_linked_not_dispatched_or_counted(admin):
    at1, at2 = "2026-08-20T09:00:00+08:00", "2026-08-20T15:00:00+08:00"
    text = "海淀区中关村街道中关村大街夜间施工噪音扰民，凌晨两点还在施工。"
    first = post(admin, text, at1, phone="13800000001")
    again = post(admin, text, at2, phone="13800000001")
    other_caller = post(admin, text, at2, phone="13900000002")
    assert again["duplicate_of"] == first["ticket_id"] and again["status"] == "closed"
    assert other_caller["duplicate_of"] is None
    events = [e["kind"] for e in admin.get(f"/v1/tickets/{first['ticket_id']}").json()["events"]]
    assert "repeated" in events
    volume = admin.get("/v1/analytics/volume", params={"from": "2026-08-20T00:00:00+08:00",
                                                       "to": "2026-08-21T00:00:00+08:00", "interval": "none"}).json()
    assert volume["items"][0]["appeals"] == 2  # the repeat is not counted again


@pytest.mark.parametrize("text", ["请问居住证怎么办理？"])
def test_appeals_without_a_place_never_group(admin, text):
    tickets = [post(admin, text, f"2026-08-25T1{i}:00:00+08:00") for i in range(3)]
    assert all(t["group_id"] is None for t in tickets)
