"""日通报 / 周汇总 / 月分析: HTML a person can read, with the sections the hotline needs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def data(admin):
    for i in range(8):
        at = f"2026-05-1{i % 7 + 1}T0{i % 9}:30:00+08:00"
        text = ["朝阳区望京街道望京西园三区楼下垃圾没人清运", "海淀区中关村街道夜间施工噪音扰民",
                "西城区德胜街道老楼停水两天了"][i % 3]
        admin.post("/v1/appeals", json={"text": text, "received_at": at, "at": at})


@pytest.mark.parametrize("kind, title", [("daily", "日通报"), ("weekly", "周汇总"), ("monthly", "月分析")])
def test_reports_are_readable_html_with_every_section(admin, data, kind, title):
    response = admin.get(f"/v1/reports/{kind}", params={"date": "2026-05-13"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert f"<h1>{title}</h1>" in html and "<svg" in html  # an inline chart
    for section in ("总体情况", "诉求量趋势", "诉求分类", "诉求地点", "三率排名", "超期与紧急工单", "热点问题", "异常预警"):
        assert section in html
    assert ("每月一题候选" in html) == (kind == "monthly") and ("城市问题台账" in html) == (kind == "monthly")
    assert "@media print" in html


def test_report_periods(taxonomy):
    from datetime import date

    from serving.services.reports import period_for

    tz = taxonomy.timezone  # the profile's: Asia/Shanghai
    assert period_for("weekly", date(2026, 5, 13), tz).first == date(2026, 5, 11)  # the Monday
    monthly = period_for("monthly", date(2026, 5, 13), tz)
    assert monthly.last == date(2026, 6, 1) and monthly.start.utcoffset().total_seconds() == 8 * 3600
    with pytest.raises(ValueError, match="kind"):
        period_for("yearly", date(2026, 5, 13), tz)


def test_bad_report_requests(admin):
    assert admin.get("/v1/reports/yearly", params={"date": "2026-05-13"}).status_code == 422
    assert admin.get("/v1/reports/daily", params={"date": "13/05/2026"}).status_code == 422
    assert admin.get("/v1/reports/monthly", params={"date": "0001-01-01"}).status_code == 422


def test_cli_writes_the_monthly_report(data, database_url, data_dir, tmp_path):
    env = {**os.environ, "JIESU_DATABASE_URL": database_url, "JIESU_DATA_DIR": str(data_dir)}
    out = tmp_path / "2026-05.html"
    result = subprocess.run([sys.executable, "-m", "serving.cli", "report", "--kind", "monthly", "--date",
                             "2026-05-13", "--out", str(out)], capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "<h1>月分析</h1>" in out.read_text(encoding="utf-8")
    bad = subprocess.run([sys.executable, "-m", "serving.cli", "report", "--kind", "monthly", "--date", "May"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "--date" in bad.stderr
