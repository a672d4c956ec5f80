"""A month of tickets driven through HTTP with known outcomes: the exact 三率, bonus, score and rank.

Worked by hand (weights 0.10/0.45/0.45, 基本满意 counts 0.8, a resolved group appeal earns 0.5):
建外街道: 3 dispatched, 2 on time, 3 evaluated, 2 resolved, 1.8 satisfied, bonus 0.5
          → rates 2/3, 2/3, 0.6 → 100 × (0.0667 + 0.3 + 0.27) + 0.5 = 64.1667, rank 2
望京街道: 3 dispatched, 2 on time, 1 evaluated (one marked unreasonable), 1 resolved, 1 satisfied
          → rates 2/3, 1, 1 → 96.6667, rank 1
A November ticket for 建外街道 does not count in October.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

TEXT = "市民反映小区楼下垃圾堆放多日无人清运，影响居民生活。"


@pytest.fixture(scope="module")
def month(admin, taxonomy):
    street = {u.name: u.id for u in taxonomy.units.of_kind("street")}
    jianwai, wangjing = street["建外街道"], street["望京街道"]

    def ticket(day, unit, accept_after_hours, evaluation=None, group=False, unreasonable=False, month="10"):
        received = f"2026-{month}-{day:02d}T09:00:00+08:00"
        tid = admin.post("/v1/appeals", json={"text": TEXT, "received_at": received, "at": received}).json()["ticket_id"]
        assigned = f"2026-{month}-{day:02d}T10:00:00+08:00"
        r = admin.post(f"/v1/tickets/{tid}/assign", json={"primary_unit_id": unit, "urgency": 3, "group_appeal": group,
                                                          "at": assigned})
        assert r.status_code == 200, r.text
        if accept_after_hours is not None:
            at = f"2026-{month}-{day + accept_after_hours // 24:02d}T{10 + accept_after_hours % 24:02d}:00:00+08:00"
            assert admin.post(f"/v1/tickets/{tid}/accept", json={"as_unit": unit, "at": at}).status_code == 200
            if evaluation:
                later = f"2026-{month}-{day + 5:02d}T10:00:00+08:00"
                assert admin.post(f"/v1/tickets/{tid}/reply", json={"as_unit": unit, "text": "已处理",
                                                                    "solved": True, "at": later}).status_code == 200
                resolved, satisfaction = evaluation
                assert admin.post(f"/v1/tickets/{tid}/evaluate", json={
                    "resolved": resolved, "satisfaction": satisfaction, "at": later}).status_code == 200
        if unreasonable:
            assert admin.post(f"/v1/tickets/{tid}/mark-unreasonable", json={"reason": "超出政策规定"}).status_code == 200
        return tid

    ticket(1, jianwai, 2, (True, "satisfied"))
    ticket(2, jianwai, 48, (False, "dissatisfied"))  # accepted a day late
    ticket(3, jianwai, 3, (True, "basically_satisfied"), group=True)
    ticket(5, wangjing, 1, (True, "satisfied"))
    ticket(6, wangjing, None)  # never accepted
    ticket(7, wangjing, 4, (False, "dissatisfied"), unreasonable=True)
    ticket(1, jianwai, 1, (True, "satisfied"), month="11")
    return {"jianwai": jianwai, "wangjing": wangjing}


def test_exact_scores_and_ranks(admin, month):
    response = admin.get("/v1/scores", params={"month": "2026-10", "level": "street"})
    assert response.status_code == 200, response.text
    rows = {r["unit_id"]: r for r in response.json()}
    j, w = rows[month["jianwai"]], rows[month["wangjing"]]
    assert (j["dispatched"], j["responded_on_time"], j["evaluated"], j["resolved"]) == (3, 2, 3, 2)
    assert j["satisfied"] == pytest.approx(1.8)
    assert (j["response_rate"], j["resolution_rate"], j["satisfaction_rate"]) == pytest.approx((2 / 3, 2 / 3, 0.6))
    assert j["bonus"] == 0.5 and j["score"] == pytest.approx(64.1667, abs=1e-3) and j["rank"] == 2
    assert (w["dispatched"], w["responded_on_time"], w["evaluated"], w["resolved"]) == (3, 2, 1, 1)
    assert (w["response_rate"], w["resolution_rate"], w["satisfaction_rate"]) == pytest.approx((2 / 3, 1.0, 1.0))
    assert w["bonus"] == 0 and w["score"] == pytest.approx(96.6667, abs=1e-3) and w["rank"] == 1
    assert j["responses_owed"] == w["responses_owed"] == 3
    assert {"unit_id", "unit_name", "dispatched", "responses_owed", "responded_on_time", "evaluated", "resolved",
            "satisfied", "response_rate", "resolution_rate", "satisfaction_rate", "bonus", "score", "rank", "share",
            "members"} == set(j)


def test_the_cli_gives_the_same_scores(month, database_url, data_dir):
    env = {**os.environ, "JIESU_DATABASE_URL": database_url, "JIESU_DATA_DIR": str(data_dir)}
    result = subprocess.run([sys.executable, "-m", "serving.cli", "scores", "--month", "2026-10", "--level", "street"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = {r["unit_id"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows[month["wangjing"]]["rank"] == 1 and rows[month["jianwai"]]["score"] == pytest.approx(64.1667, abs=1e-3)


@pytest.mark.parametrize("params", [{"month": "2026-13"}, {"month": "202610"}, {"month": "2026-10", "level": "city"}])
def test_bad_score_queries_are_422(admin, params):
    assert admin.get("/v1/scores", params=params).status_code == 422

