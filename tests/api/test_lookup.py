"""点对点反馈: a citizen looks up their ticket by its number and the phone they filed it with, and sees
its status, deadlines and the unit's reply (masked) — nothing for a wrong phone, and a bounded number of
tries a minute."""

from __future__ import annotations

from tests.api.conftest import client


def test_a_citizen_sees_status_deadlines_and_the_reply_with_their_number_and_phone(admin, base_url, taxonomy):
    street = next(u.id for u in taxonomy.units.of_kind("street") if u.name == "建外街道")
    ticket = admin.post("/v1/appeals", json={"text": "朝阳区建外街道永安里小区路灯不亮。",
                                             "caller": {"name": "李四", "phone": "138-0013-8000"}}).json()
    tid = ticket["ticket_id"]
    assert admin.post(f"/v1/tickets/{tid}/assign", json={"primary_unit_id": street}).status_code == 200
    assert admin.post(f"/v1/tickets/{tid}/accept", json={"as_unit": street}).status_code == 200
    assert admin.post(f"/v1/tickets/{tid}/reply", json={"as_unit": street, "solved": True,
                                                        "text": "已修复，如有问题请拨打13912345678"}).status_code == 200
    with client(base_url, None) as citizen:  # no key
        seen = citizen.post("/v1/lookup", json={"ticket_id": tid, "phone": "13800138000"})
        assert seen.status_code == 200, seen.text
        body = seen.json()
        assert body["status"] == "replied" and body["status_name"] == "已答复" and body["resolve_by"]
        assert body["replies"][0]["text"].startswith("已修复") and "13912345678" not in body["replies"][0]["text"]
        assert set(body) == {"ticket_id", "status", "status_name", "received_at", "respond_by", "resolve_by", "replies"}
        wrong_phone = citizen.post("/v1/lookup", json={"ticket_id": tid, "phone": "13800138001"})
        no_ticket = citizen.post("/v1/lookup", json={"ticket_id": 2**40, "phone": "13800138000"})
        assert wrong_phone.status_code == no_ticket.status_code == 404
        assert wrong_phone.json() == no_ticket.json()  # says nothing about which tickets exist
        bad = citizen.post("/v1/lookup", json={"ticket_id": tid, "phone": "电话"})
        assert bad.status_code == 422 and bad.json()["detail"]["field"] == "phone"


def test_lookups_from_one_address_are_limited_per_minute(base_url):
    with client(base_url, None) as citizen:
        codes = [citizen.post("/v1/lookup", json={"ticket_id": 1, "phone": "13800000000"}).status_code for _ in range(12)]
        assert 429 in codes and set(codes) <= {404, 429}
        limited = citizen.post("/v1/lookup", json={"ticket_id": 1, "phone": "13800000000"})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
