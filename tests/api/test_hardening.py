"""Bad input is a 4xx naming what is wrong, on both databases; the service is degraded, not down,
without a model or with a busy database; a database error writes no citizen's data to the log."""

from __future__ import annotations

import logging
import sqlite3

import httpx
import pytest

from tests.api.conftest import ADMIN_KEY, Server, client

NOISE = {"title": "施工噪音", "text": "海淀区中关村街道中关村大街夜间施工噪音扰民，凌晨两点还在施工。"}


def new_ticket(admin) -> dict:
    response = admin.post("/v1/appeals", json=NOISE)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_body_over_the_limit_is_413_before_it_is_read_whole(admin, base_url):
    big = {"text": "噪" * 400_000}  # 1.2 MB of UTF-8: over the 1 MB default
    response = admin.post("/v1/appeals", json=big)
    assert response.status_code == 413 and response.json()["detail"]["message"]

    def chunks():  # no Content-Length: the guard counts the bytes as they arrive
        yield b'{"text": "'
        for _ in range(300):
            yield ("噪" * 2000).encode()
        yield b'"}'

    with client(base_url) as c:
        streamed = c.post("/v1/appeals", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413


@pytest.mark.parametrize("path, params", [
    ("/v1/tickets", {"unit_id": "street:1\x00"}),
    ("/v1/analytics/volume", {"from": "2026-11-01", "to": "2026-11-02", "by": "category\x00"}),
])
def test_a_nul_in_a_query_parameter_is_422_naming_it(admin, path, params):
    response = admin.get(path, params=params)
    name = next(k for k, v in params.items() if "\x00" in v)
    assert response.status_code == 422 and response.json()["detail"]["field"] == f"query.{name}"


@pytest.mark.parametrize("action, body, field", [
    ("note", '{"text": "已联系施工方\\u0000"}', "text"),
    ("assign", '{"primary_unit_id": "street:110108001", "urgency": NaN}', "urgency"),
    ("assign", '{"primary_unit_id": "street:110108001", "urgency": Infinity}', "urgency"),
])
def test_nul_nan_and_infinity_in_an_action_body_are_422(admin, action, body, field):
    ticket = new_ticket(admin)
    response = admin.post(f"/v1/tickets/{ticket['ticket_id']}/{action}", content=body,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["field"] == field
    events = admin.get(f"/v1/tickets/{ticket['ticket_id']}").json()["events"]
    assert [e["kind"] for e in events][-1] != action  # nothing was applied


def test_an_id_beyond_the_columns_range_is_404(admin):
    for path in (f"/v1/tickets/{2**40}", f"/v1/topics/{2**40}"):
        assert admin.get(path).status_code == 404
    assert admin.post(f"/v1/tickets/{2**40}/accept", json={}).status_code == 404
    assert admin.post(f"/v1/ledger/{2**40}/close", json={"note": "x"}).status_code == 404


def test_a_topic_that_cannot_be_tracked_is_refused_before_it_is_stored(admin):
    before = admin.get("/v1/topics").json()
    response = admin.post("/v1/topics", json={"month": "0001-01", "category": "城乡建设"})
    assert response.status_code == 422 and response.json()["detail"]["field"] == "month"
    assert admin.get("/v1/topics").json() == before


def test_a_form_that_is_not_utf8_is_400(base_url):
    with httpx.Client(base_url=base_url) as c:
        response = c.post("/ui/login", content=b"key=%FF%FE", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400 and "UTF-8" in response.json()["detail"]["message"]


# --- degraded, not down ------------------------------------------------------------------------------

@pytest.fixture()
def unmodelled(database_url, data_dir):
    """The service started without a model, on the module's database."""
    from serving.api.app import create_app
    from serving.settings import Settings

    app = create_app(Settings(database_url=database_url, model_path=None, bootstrap_admin_key=ADMIN_KEY,
                              data_dir=data_dir, supervise_interval_s=0))
    with Server(app) as base_url:
        with client(base_url) as c:
            yield c


def test_without_a_model_intake_queues_for_review_and_a_reload_dispatches(unmodelled, sample_model):
    ready = unmodelled.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    response = unmodelled.post("/v1/appeals", json={"text": "海淀区中关村街道中关村大街燃气泄漏，味道很大！"})
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert ticket["status"] == "review" and ticket["classification"]["urgency"] == 1  # the danger rule still reads
    assert ticket["classification"]["street"] == "中关村街道"
    events = unmodelled.get(f"/v1/tickets/{ticket['ticket_id']}").json()["events"]
    queued = [e for e in events if e["kind"] == "queued_for_review"]
    assert queued[0]["payload"]["reasons"] == ["no_model"]
    no_category = unmodelled.post(f"/v1/tickets/{ticket['ticket_id']}/assign",
                                  json={"primary_unit_id": "street:110108001"})
    assert no_category.status_code == 422 and no_category.json()["detail"]["field"] == "category"
    reloaded = unmodelled.post("/v1/models/reload", json={"path": str(sample_model)})
    assert reloaded.status_code == 200
    after = unmodelled.get(f"/v1/tickets/{ticket['ticket_id']}").json()
    assert after["classification"]["category"]["label"]  # classified now
    assert [e["kind"] for e in after["events"]][-2:] in (["classified", "dispatched"], ["classified", "queued_for_review"])
    assert unmodelled.get("/readyz").json()["status"] == "ready"


def test_a_locked_database_is_503_with_retry_after_and_the_log_holds_no_appeal(tmp_path, sample_model, data_dir,
                                                                               caplog):
    from serving.api.app import create_app
    from serving.settings import Settings

    path = tmp_path / "busy.db"
    app = create_app(Settings(database_url=f"sqlite:///{path}", model_path=sample_model, bootstrap_admin_key=ADMIN_KEY,
                              data_dir=data_dir, supervise_interval_s=0, db_busy_timeout_s=0.3))
    secret = "朝阳区望京街道张三电话13912345678身份证110105199001011234家门口垃圾堆积"
    with Server(app) as base_url, client(base_url) as c:
        assert c.get("/v1/tickets").status_code == 200  # the key is known before the lock is taken
        holder = sqlite3.connect(path, timeout=0)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with caplog.at_level(logging.DEBUG):
                response = c.post("/v1/appeals", json={"text": secret, "caller": {"name": "张三", "phone": "13912345678"}})
        finally:
            holder.rollback()
            holder.close()
        assert response.status_code == 503 and response.headers["Retry-After"] == "2"
        assert "13912345678" not in response.text and "张三" not in response.text
        logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
        assert "13912345678" not in logged and "110105199001011234" not in logged and "垃圾堆积" not in logged
        assert c.post("/v1/appeals", json={"text": secret}).status_code == 201  # the lock is gone: served again
