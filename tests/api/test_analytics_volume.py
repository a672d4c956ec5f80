"""Volume and the 三率 by slice and period, in SQL on SQLite and PostgreSQL, over HTTP and from the CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def history(admin, taxonomy):
    """Five tickets on two days (hotline time), with known categories, channels and outcomes."""
    street = next(u for u in taxonomy.units.of_kind("street") if u.name == "建外街道").id
    plan = [
        ("2026-09-01T08:00:00+08:00", "phone", "城乡建设/供暖/停暖与未供暖", (True, "satisfied"), 1),
        ("2026-09-01T23:30:00+08:00", "phone", "城乡建设/供水/停水与水压低", (False, "dissatisfied"), 30),  # late
        ("2026-09-01T12:00:00+08:00", "web", "环境保护", (True, "basically_satisfied"), 2),
        ("2026-09-02T00:30:00+08:00", "web", "城乡建设/供暖/供暖费", None, None),  # Sep 1 16:30 UTC: Sep 2 here
        ("2026-09-02T09:00:00+08:00", "wechat", "环境保护", (True, "satisfied"), 1),
    ]
    for received, channel, category, evaluation, accept_hours in plan:
        tid = admin.post("/v1/appeals", json={"text": "市民反映的问题需要处理。", "channel": channel,
                                              "received_at": received, "at": received}).json()["ticket_id"]
        r = admin.post(f"/v1/tickets/{tid}/assign", json={"primary_unit_id": street, "category": category,
                                                          "urgency": 3, "at": received})
        assert r.status_code == 200, r.text
        if accept_hours is not None:
            at = received.replace("T", "T").replace(received[11:13], f"{int(received[11:13]):02d}")
            from datetime import datetime, timedelta

            accepted = (datetime.fromisoformat(at) + timedelta(hours=accept_hours)).isoformat()
            assert admin.post(f"/v1/tickets/{tid}/accept", json={"as_unit": street, "at": accepted}).status_code == 200
            if evaluation:
                assert admin.post(f"/v1/tickets/{tid}/reply", json={"as_unit": street, "text": "已处理", "solved": True,
                                                                    "at": accepted}).status_code == 200
                assert admin.post(f"/v1/tickets/{tid}/evaluate", json={
                    "resolved": evaluation[0], "satisfaction": evaluation[1], "at": accepted}).status_code == 200
    return street


WINDOW = {"from": "2026-09-01T00:00:00+08:00", "to": "2026-09-03T00:00:00+08:00"}


def test_volume_by_day_in_hotline_time(admin, history):
    items = admin.get("/v1/analytics/volume", params={**WINDOW, "interval": "day"}).json()["items"]
    assert [(i["period"], i["appeals"]) for i in items] == [("2026-09-01", 3), ("2026-09-02", 2)]
    first = items[0]
    assert (first["dispatched"], first["responded_on_time"], first["evaluated"], first["resolved"]) == (3, 2, 3, 2)
    assert first["satisfied"] == pytest.approx(1.8)
    assert first["response_rate"] == pytest.approx(2 / 3) and first["satisfaction_rate"] == pytest.approx(0.6)


def test_volume_by_category_at_each_level_and_by_channel(admin, history):
    level1 = admin.get("/v1/analytics/volume", params={**WINDOW, "interval": "none", "by": "category"}).json()["items"]
    assert {i["category"]: i["appeals"] for i in level1} == {"城乡建设": 3, "环境保护": 2}
    level2 = admin.get("/v1/analytics/volume", params={**WINDOW, "interval": "none", "by": "category",
                                                       "level": 2}).json()["items"]
    assert {i["category"]: i["appeals"] for i in level2} == {None: 2, "城乡建设/供暖": 2, "城乡建设/供水": 1}
    both = admin.get("/v1/analytics/volume", params={**WINDOW, "interval": "month", "by": "category,channel"}).json()
    assert {(i["period"], i["category"], i["channel"]): i["appeals"] for i in both["items"]} == {
        ("2026-09", "城乡建设", "phone"): 2, ("2026-09", "城乡建设", "web"): 1, ("2026-09", "环境保护", "web"): 1,
        ("2026-09", "环境保护", "wechat"): 1}


def test_volume_as_csv(admin, history):
    response = admin.get("/v1/analytics/volume", params={**WINDOW, "by": "street", "interval": "week", "format": "csv"})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows == [{**rows[0], "period": "2026-08-31", "street": history, "appeals": "5"}]


@pytest.mark.parametrize("params", [
    {**WINDOW, "by": "weather"}, {**WINDOW, "interval": "hour"}, {**WINDOW, "level": 4},
    {"from": "2026-09-03T00:00:00+08:00", "to": "2026-09-01T00:00:00+08:00"},
    {"to": "2026-09-02T00:00:00+08:00"},
])
def test_bad_volume_queries_are_422(admin, params):
    response = admin.get("/v1/analytics/volume", params=params)
    assert response.status_code == 422 and response.json()["detail"]["message"]


def test_a_plain_date_is_that_day_in_the_hotlines_time_zone(admin, history):
    plain = admin.get("/v1/analytics/volume", params={"from": "2026-09-01", "to": "2026-09-03", "by": "category"})
    zoned = admin.get("/v1/analytics/volume", params={"from": "2026-09-01T00:00:00+08:00",
                                                      "to": "2026-09-03T00:00:00+08:00", "by": "category"})
    assert plain.status_code == 200 and plain.json()["items"] == zoned.json()["items"]
    assert plain.json()["from"].startswith("2026-09-01T00:00:00+08:00")


def test_the_cli_gives_the_same_numbers(history, database_url, data_dir):
    env = {**os.environ, "JIESU_DATABASE_URL": database_url, "JIESU_DATA_DIR": str(data_dir)}
    result = subprocess.run([sys.executable, "-m", "serving.cli", "analytics", "volume", "--from", "2026-09-01",
                             "--to", "2026-09-03", "--by", "category"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {(r["period"], r["category"]): r["appeals"] for r in rows} == {
        ("2026-09-01", "城乡建设"): 2, ("2026-09-01", "环境保护"): 1, ("2026-09-02", "城乡建设"): 1,
        ("2026-09-02", "环境保护"): 1}
    bad = subprocess.run([sys.executable, "-m", "serving.cli", "analytics", "volume", "--from", "yesterday", "--to",
                          "2026-09-03"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "--from" in bad.stderr


def test_hotspots_over_http_find_a_burst_of_heating_complaints(admin, base_url):
    """25 near-identical heating complaints from one street in one day become one hotspot."""
    day = "2026-12-15T{h:02d}:{m:02d}:00+08:00"
    ids = []
    for i in range(25):
        at = day.format(h=8 + i // 4, m=(i % 4) * 15)
        text = f"朝阳区南磨房地区和馨家园{i % 9 + 1}号楼暖气不热，室温只有{12 + i % 4}度，请尽快处理。"
        ids.append(admin.post("/v1/appeals", json={"title": "和馨家园暖气不热", "text": text, "received_at": at,
                                                    "at": at}).json()["ticket_id"])
    for i, text in enumerate(["望京西园三区门口共享单车乱停放", "建外街道永安里路灯不亮", "中关村大街夜间施工噪音扰民"]):
        at = day.format(h=9 + i, m=0)
        admin.post("/v1/appeals", json={"text": text, "received_at": at, "at": at})
    response = admin.get("/v1/analytics/hotspots", params={"from": "2026-12-15T00:00:00+08:00",
                                                           "to": "2026-12-16T00:00:00+08:00"})
    assert response.status_code == 200, response.text
    body = response.json()
    top = body["items"][0]
    assert body["appeals"] == 28 and top["size"] == 25 and sorted(top["ticket_ids"]) == sorted(ids)
    assert top["place"] == "南磨房地区" and {"size", "ticket_ids", "title", "place", "key_phrases", "first", "last",
                                              "trend"} <= set(top)
    assert admin.get("/v1/analytics/hotspots", params={"from": "2026-12-16T00:00:00+08:00",
                                                       "to": "2026-12-15T00:00:00+08:00"}).status_code == 422
    # any level of the tree: the hotspot names its category there, and a path narrows the search
    first_level = top["category"]
    assert first_level and "/" not in first_level
    narrowed = admin.get("/v1/analytics/hotspots", params={"from": "2026-12-15T00:00:00+08:00",
                                                           "to": "2026-12-16T00:00:00+08:00", "level": 2,
                                                           "category": first_level}).json()
    assert narrowed["appeals"] < 28 and narrowed["items"][0]["category"].startswith(first_level + "/") \
        or narrowed["items"][0]["category"] == first_level
    unknown = admin.get("/v1/analytics/hotspots", params={"from": "2026-12-15T00:00:00+08:00",
                                                          "to": "2026-12-16T00:00:00+08:00", "category": "没有这类"})
    assert unknown.status_code == 422 and "category" in unknown.text


@pytest.mark.parametrize("path", ["/v1/analytics/volume", "/v1/analytics/hotspots", "/v1/alerts"])
def test_extreme_dates_are_refused_not_crashed(admin, path):
    response = admin.get(path, params={"from": "0001-01-01T00:00:00+01:00", "to": "9999-12-31T23:00:00-01:00"})
    assert 400 <= response.status_code < 500, response.text
