"""每月一题 over HTTP: candidates ranked with evidence, a topic chosen and tracked month by month."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def months(admin, taxonomy):
    """Wage arrears grow in February then fall by April; parking stays flat."""
    street = next(u for u in taxonomy.units.of_kind("street") if u.name == "望京街道").id
    plan = {"2026-01": (2, 3), "2026-02": (8, 3), "2026-03": (6, 3), "2026-04": (4, 3)}
    for month, (wages, parking) in plan.items():
        for i in range(wages):
            at = f"{month}-{10 + i:02d}T10:00:00+08:00"
            tid = admin.post("/v1/appeals", json={"text": "公司拖欠工资三个月，老板联系不上。", "received_at": at,
                                                  "at": at}).json()["ticket_id"]
            admin.post(f"/v1/tickets/{tid}/assign", json={"primary_unit_id": street, "category": "劳动和社会保障",
                                                          "urgency": 2, "at": at})
        for i in range(parking):
            at = f"{month}-{3 + i:02d}T10:00:00+08:00"
            tid = admin.post("/v1/appeals", json={"text": "小区门口乱停车，消防通道被占。", "received_at": at,
                                                  "at": at}).json()["ticket_id"]
            admin.post(f"/v1/tickets/{tid}/assign", json={"primary_unit_id": street, "category": "交通运输",
                                                          "urgency": 3, "at": at})
    return plan


def test_candidates_rank_the_growing_problem_first(admin, months):
    body = admin.get("/v1/analytics/topics", params={"month": "2026-02"}).json()
    first = body["items"][0]
    assert first["category"] == "劳动和社会保障" and first["rank"] == 1 and first["appeals"] == 8
    assert first["previous_monthly_mean"] == pytest.approx(2 / 3, abs=0.01) and first["growth"] > 1
    assert {"share", "resolution_rate", "satisfaction_rate", "score", "score_parts"} <= set(first)
    parking = next(i for i in body["items"] if i["category"] == "交通运输")
    assert parking["score"] < first["score"]


def test_a_chosen_topic_is_tracked_against_its_month(admin, months):
    chosen = admin.post("/v1/topics", json={"month": "2026-02", "category": "劳动和社会保障", "title": "拖欠工资"})
    assert chosen.status_code == 201, chosen.text
    tracked = {m["month"]: m for m in admin.get(f"/v1/topics/{chosen.json()['id']}").json()["months"]}
    assert tracked["2026-02"]["appeals"] == 8 and tracked["2026-04"]["appeals"] == 4
    assert tracked["2026-04"]["change_vs_chosen_month"] == pytest.approx(-0.5)
    assert tracked["2025-11"]["appeals"] == 0  # three months before are shown too
    assert any(t["title"] == "拖欠工资" for t in admin.get("/v1/topics").json())
    bad = admin.post("/v1/topics", json={"month": "2026-02", "category": "外星事务"})
    assert bad.status_code == 422 and "category" in bad.text
    assert admin.get("/v1/topics/999999").status_code == 404


def test_cli_topics(months, database_url, data_dir):
    env = {**os.environ, "JIESU_DATABASE_URL": database_url, "JIESU_DATA_DIR": str(data_dir)}
    result = subprocess.run([sys.executable, "-m", "serving.cli", "topics", "--month", "2026-02"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["category"] == "劳动和社会保障"
    bad = subprocess.run([sys.executable, "-m", "serving.cli", "topics", "--month", "Feb"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "--month" in bad.stderr
