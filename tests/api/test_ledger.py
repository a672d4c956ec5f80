"""城市问题台账: a problem that keeps coming back for weeks becomes an entry; a one-day burst does not."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

BEIJING = timezone(timedelta(hours=8))


def test_recurring_hotspot_becomes_a_ledger_entry_until_closed(admin, make_key, base_url, taxonomy):
    from tests.api.conftest import client

    # the same drainage problem, twice a week for five weeks, in one street
    recurring = []
    for week in range(5):
        for day in (1, 4):
            at = (datetime(2026, 6, 1, 9, tzinfo=BEIJING) + timedelta(days=7 * week + day)).isoformat()
            text = f"东城区龙潭街道夕照寺街胡同口污水井又往外冒了，第{week * 2 + day}次反映，味道很大，请彻底修好。"
            recurring.append(admin.post("/v1/appeals", json={"title": "夕照寺街污水井冒水", "text": text,
                                                             "received_at": at, "at": at}).json()["ticket_id"])
    # a one-day burst elsewhere: a hotspot, but not a recurring problem
    for i in range(6):
        at = f"2026-06-20T1{i}:00:00+08:00"
        admin.post("/v1/appeals", json={"text": f"望京西园三区{i + 1}号楼停电了，冰箱里的东西都坏了。", "received_at": at,
                                        "at": at})
    synced = admin.post("/v1/ledger/sync", json={"from": "2026-06-01T00:00:00+08:00",
                                                 "to": "2026-07-10T00:00:00+08:00"})
    assert synced.status_code == 200, synced.text
    entries = synced.json()["entries"]
    assert len(entries) == 1
    entry = entries[0]
    assert set(entry["ticket_ids"]) == set(recurring) and entry["status"] == "open"
    assert entry["owner_unit"] and "夕照寺" in entry["title"]
    again = admin.post("/v1/ledger/sync", json={"from": "2026-06-01T00:00:00+08:00",
                                                "to": "2026-07-10T00:00:00+08:00"}).json()["entries"]
    assert [e["id"] for e in again] == [entry["id"]]  # extended, not duplicated
    with client(base_url, make_key("reviewer")) as reviewer:
        closed = reviewer.post(f"/v1/ledger/{entry['id']}/close", json={"note": "已更换管线，连续四周无反映"})
        assert closed.status_code == 200 and closed.json()["status"] == "closed"
        assert reviewer.post(f"/v1/ledger/{entry['id']}/close", json={"note": "again"}).status_code == 409
    assert admin.get("/v1/ledger", params={"status": "closed"}).json()[0]["id"] == entry["id"]
    assert admin.get("/v1/ledger", params={"status": "open"}).json() == []
