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
        # its tickets were never answered and are overdue: closing needs a reason too
        refused = reviewer.post(f"/v1/ledger/{entry['id']}/close", json={"note": "已更换管线，连续四周无反映"})
        assert refused.status_code == 422 and refused.json()["detail"]["field"] == "reason"
        closed = reviewer.post(f"/v1/ledger/{entry['id']}/close", json={
            "note": "已更换管线，连续四周无反映", "reason": "管线已更换，街道未在系统中答复"})
        assert closed.status_code == 200 and closed.json()["status"] == "closed"
        assert closed.json()["history"][-1]["reason"] == "管线已更换，街道未在系统中答复"
        assert reviewer.post(f"/v1/ledger/{entry['id']}/close", json={"note": "again"}).status_code == 409
    assert admin.get("/v1/ledger", params={"status": "closed"}).json()[0]["id"] == entry["id"]
    assert admin.get("/v1/ledger", params={"status": "open"}).json() == []
    # a re-sync over the same tickets leaves the closed entry closed and opens no other
    assert admin.post("/v1/ledger/sync", json={"from": "2026-06-01T00:00:00+08:00",
                                               "to": "2026-07-10T00:00:00+08:00"}).json()["entries"] == []
    assert admin.get("/v1/ledger", params={"status": "open"}).json() == []


def test_a_closed_entry_reopens_only_for_tickets_after_its_close(admin, make_key, base_url):
    """The same drainage problem in another street: closed, then reported again within the hotspot's
    window. The new tickets reopen the entry, and its history says which."""
    from tests.api.conftest import client

    now = datetime.now(BEIJING).replace(microsecond=0)

    def report(when, n):
        at = when.isoformat()
        return admin.post("/v1/appeals", json={
            "title": "东四十条雨水口堵塞", "received_at": at, "at": at,
            "text": f"东城区东四街道东四十条路口雨水口又堵了，一下雨就积水，第{n}次反映。"}).json()["ticket_id"]

    before = [report(now - timedelta(days=d), i) for i, d in enumerate((24, 20, 16, 12, 8, 4), start=1)]
    window = {"from": (now - timedelta(days=30)).isoformat(), "to": (now + timedelta(days=30)).isoformat()}
    entry = next(e for e in admin.post("/v1/ledger/sync", json=window).json()["entries"]
                 if set(e["ticket_ids"]) == set(before))
    with client(base_url, make_key("reviewer")) as reviewer:
        assert reviewer.post(f"/v1/ledger/{entry['id']}/close", json={
            "note": "已疏通", "reason": "已现场疏通，工单未答复"}).status_code == 200
    assert entry["id"] not in [e["id"] for e in admin.post("/v1/ledger/sync", json=window).json()["entries"]]
    after = [report(now + timedelta(days=d), 10 + d) for d in (1, 3)]
    synced = admin.post("/v1/ledger/sync", json=window).json()["entries"]
    reopened = next(e for e in synced if e["id"] == entry["id"])
    assert reopened["status"] == "open" and reopened["history"][-1]["kind"] == "reopened"
    assert set(reopened["history"][-1]["ticket_ids"]) == set(after)
