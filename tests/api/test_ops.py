"""Operations over HTTP: health, readiness, metrics, units, the model and reloading it, OpenAPI docs."""

from __future__ import annotations

import shutil

from tests.api.conftest import client


def test_health_and_readiness(base_url):
    with client(base_url, None) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "model": "ok"}
        assert c.get("/docs").status_code == 200
        assert "/v1/appeals" in c.get("/openapi.json").json()["paths"]


def test_metrics_count_requests_predictions_and_tickets(admin, base_url, make_key):
    admin.post("/v1/appeals", json={"text": "朝阳区望京街道的路灯坏了一个星期。"})
    with client(base_url, None) as anonymous:
        assert anonymous.get("/metrics").status_code == 401
    with client(base_url, make_key("intake")) as intake:
        assert intake.get("/metrics").status_code == 403
    with client(base_url, make_key("analyst")) as analyst:
        text = analyst.get("/metrics").text
    assert "jiesu_http_requests_total" in text and "jiesu_http_request_seconds_bucket" in text
    assert "jiesu_predictions_total{" in text and 'jiesu_tickets{status="dispatched"}' in text


def test_units_are_listed_by_kind(admin):
    streets = admin.get("/v1/units", params={"kind": "street"}).json()
    assert len(streets) == 349 and {"id", "name", "kind"} <= set(streets[0])
    companies = admin.get("/v1/units", params={"kind": "company"}).json()
    assert any(u["service"] == "heating" for u in companies)
    assert admin.get("/v1/units", params={"kind": "planet"}).status_code == 422


def test_reload_refuses_a_bad_bundle_and_keeps_serving(admin, base_url, make_key, sample_model, tmp_path):
    before = admin.get("/v1/models/current").json()
    assert before["kind"] == "linear" and len(before["labels"]) == 15
    broken = tmp_path / "broken"
    shutil.copytree(sample_model, broken)
    (broken / "linear" / "weights.npz").write_bytes(b"not a model")
    refused = admin.post("/v1/models/reload", json={"path": str(broken)})
    assert refused.status_code == 422 and "checksum" in refused.text
    assert admin.get("/v1/models/current").json()["path"] == before["path"]
    assert admin.post("/v1/appeals", json={"text": "停水三天了"}).status_code == 201
    with client(base_url, make_key("reviewer")) as reviewer:
        assert reviewer.post("/v1/models/reload", json={}).status_code == 403
    copy = tmp_path / "copy"
    shutil.copytree(sample_model, copy)
    reloaded = admin.post("/v1/models/reload", json={"path": str(copy)})
    assert reloaded.status_code == 200 and reloaded.json()["path"] == str(copy)
