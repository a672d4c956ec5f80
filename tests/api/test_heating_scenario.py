"""The scenario of the analysis issue: after four quiet weeks, 25 near-identical 暖气不热 appeals arrive
from one street in one day. A hotspot, a group appeal and an alert must all appear."""

from __future__ import annotations

import pytest

STREET_TEXTS = ["南磨房地区百子湾路和馨家园{n}号楼暖气不热，屋里只有{t}度，老人孩子受不了。",
                "朝阳区南磨房地区和馨家园{n}号楼暖气不热，室温{t}度，请热力公司来看看。",
                "和馨家园小区（南磨房地区）{n}号楼暖气不热，家里{t}度，已经三天了。"]


@pytest.fixture(scope="module")
def burst(admin):
    # four quiet weeks: a few unrelated appeals in the same street
    for week in range(4):
        at = f"2026-11-{2 + 7 * week:02d}T10:00:00+08:00"
        admin.post("/v1/appeals", json={"text": "南磨房地区百子湾路路灯不亮，晚上走路不安全。", "received_at": at, "at": at})
    ids = []
    for i in range(25):
        at = f"2026-12-01T{8 + i // 3:02d}:{(i % 3) * 20:02d}:00+08:00"
        text = STREET_TEXTS[i % 3].format(n=i % 8 + 1, t=12 + i % 4)
        r = admin.post("/v1/appeals", json={"title": "暖气不热", "text": text, "received_at": at, "at": at})
        assert r.status_code == 201, r.text
        ids.append(r.json()["ticket_id"])
    return ids


WINDOW = {"from": "2026-12-01T00:00:00+08:00", "to": "2026-12-02T00:00:00+08:00"}


def test_a_hotspot_appears(admin, burst):
    top = admin.get("/v1/analytics/hotspots", params=WINDOW).json()["items"][0]
    assert top["size"] == 25 and sorted(top["ticket_ids"]) == sorted(burst) and top["place"] == "南磨房地区"


def test_a_group_appeal_appears(admin, burst):
    tickets = [admin.get(f"/v1/tickets/{tid}").json() for tid in burst]
    groups = {t["group_id"] for t in tickets}
    assert len(groups) == 1 and None not in groups
    assert all(t["group_appeal"] for t in tickets)


def test_an_alert_appears(admin, burst):
    for level, place in (("street", "南磨房地区"), ("district", "朝阳区")):
        items = admin.get("/v1/alerts", params={**WINDOW, "level": level}).json()["items"]
        alert = next(a for a in items if a["place"] == place)
        assert alert["date"] == "2026-12-01" and alert["observed"] == 25 and alert["expected"] < 1
        assert alert["p_value"] < 1e-6 and alert["category"]
