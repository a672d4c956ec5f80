"""部门+行业 joint evaluation over HTTP: heating tickets handled by a street with the heating company
co-dispatched are scored as the 供暖 industry, with the company's share; the CLI and the monthly report
show the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def heating_month(admin, taxonomy):
    street = next(u.id for u in taxonomy.units.of_kind("street") if u.name == "建外街道")

    def ticket(day, units, accepts, evaluation):
        received = f"2026-07-{day:02d}T09:00:00+08:00"
        tid = admin.post("/v1/appeals", json={"text": "朝阳区建外街道永安里小区暖气不热，室温只有十四度。",
                                              "received_at": received, "at": received}).json()["ticket_id"]
        r = admin.post(f"/v1/tickets/{tid}/assign", json={
            "primary_unit_id": units[0], "co_unit_ids": units[1:], "category": "城乡建设/供暖/暖气不热", "urgency": 3,
            "at": f"2026-07-{day:02d}T10:00:00+08:00"})
        assert r.status_code == 200, r.text
        for unit, hours in accepts:
            at = f"2026-07-{day + hours // 24:02d}T{10 + hours % 24:02d}:00:00+08:00"
            assert admin.post(f"/v1/tickets/{tid}/accept", json={"as_unit": unit, "at": at}).status_code == 200
        later = f"2026-07-{day + 5:02d}T10:00:00+08:00"
        assert admin.post(f"/v1/tickets/{tid}/reply", json={"as_unit": units[0], "text": "已修复", "solved": True,
                                                            "at": later}).status_code == 200
        assert admin.post(f"/v1/tickets/{tid}/evaluate", json={"resolved": evaluation[0], "satisfaction": evaluation[1],
                                                               "at": later}).status_code == 200

    ticket(1, [street, "company:heating"], [(street, 1), ("company:heating", 2)], (True, "satisfied"))
    ticket(2, ["company:heating"], [("company:heating", 48)], (False, "dissatisfied"))  # a day late
    return street


def test_the_heating_industry_is_scored_with_its_companys_share(admin, heating_month):
    response = admin.get("/v1/scores", params={"month": "2026-07", "level": "industry"})
    assert response.status_code == 200, response.text
    rows = {r["unit_id"]: r for r in response.json()}
    heating = rows["industry:heating"]
    assert heating["unit_name"] == "供暖" and heating["dispatched"] == 2
    assert (heating["responses_owed"], heating["responded_on_time"]) == (3, 2)
    assert (heating["evaluated"], heating["resolved"], heating["resolution_rate"]) == (2, 1, 0.5)
    assert heating["score"] == pytest.approx(100 * (2 / 3 * 0.10 + 0.5 * 0.45 + 0.5 * 0.45), abs=1e-3)
    (company,) = [m for m in heating["members"] if m["unit_id"] == "company:heating"]
    assert company["share"] == 1.0 and company["response_rate"] == 0.5
    assert heating_month not in [m["unit_id"] for m in heating["members"]]  # a street is not the industry's
    assert rows["industry:property"]["dispatched"] == 0 and rows["industry:property"]["score"] is None


def test_the_cli_and_the_monthly_report_show_the_industries(heating_month, admin, database_url, data_dir):
    env = {**os.environ, "JIESU_DATABASE_URL": database_url, "JIESU_DATA_DIR": str(data_dir)}
    result = subprocess.run([sys.executable, "-m", "serving.cli", "scores", "--month", "2026-07", "--level", "industry"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = {r["unit_id"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["industry:heating"]["dispatched"] == 2 and rows["industry:heating"]["members"][0]["share"] == 1.0
    report = admin.get("/v1/reports/monthly", params={"date": "2026-07-15"})
    assert report.status_code == 200 and "部门+行业联合考评" in report.text and "供暖" in report.text


def test_the_rankings_page_shows_the_industries_with_their_members(heating_month, base_url):
    import httpx

    from tests.api.conftest import ADMIN_KEY

    with httpx.Client(base_url=base_url, cookies={"jiesu_key": ADMIN_KEY}, timeout=30) as browser:
        page = browser.get("/ui/rankings", params={"month": "2026-07", "level": "industry"})
    assert page.status_code == 200 and "部门+行业联合考评" in page.text
    assert "供暖" in page.text and "份额 100%" in page.text
