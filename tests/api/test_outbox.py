"""点对点反馈: a unit's reply to a ticket filed with a phone queues the reply and the callback survey in the
outbox; delivery sends them through the sender (the default log sender writes them masked), a failing
sender is retried with back-off and the message ends failed, never dropped; the callback desk sees the
deliveries; a ticket without a phone queues nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from tests.api.conftest import client


class Flaky:
    """A gateway that is down."""

    def send(self, message):
        raise ConnectionError("gateway unreachable")


def _replied_ticket(admin, taxonomy, phone):
    street = next(u.id for u in taxonomy.units.of_kind("street") if u.name == "建外街道")
    body = {"text": "朝阳区建外街道光华路路灯不亮，晚上很黑。"}
    if phone:
        body["caller"] = {"phone": phone}
    tid = admin.post("/v1/appeals", json=body).json()["ticket_id"]
    assert admin.post(f"/v1/tickets/{tid}/assign", json={"primary_unit_id": street}).status_code == 200
    assert admin.post(f"/v1/tickets/{tid}/accept", json={"as_unit": street}).status_code == 200
    assert admin.post(f"/v1/tickets/{tid}/reply", json={"as_unit": street, "solved": True,
                                                        "text": "路灯已修复，联系人电话13912345678"}).status_code == 200
    return tid


def test_a_reply_queues_the_reply_and_the_survey_and_delivery_sends_them_masked(service, admin, base_url, taxonomy,
                                                                               make_key, tmp_path):
    from serving.services.outbox import LogSender, deliver_due

    tid = _replied_ticket(admin, taxonomy, "13800138000")
    silent = _replied_ticket(admin, taxonomy, None)
    with client(base_url, make_key("callback")) as desk:
        queued = desk.get("/v1/outbox", params={"ticket_id": tid}).json()
        assert sorted(m["kind"] for m in queued) == ["reply", "survey"] and {m["status"] for m in queued} == {"queued"}
        assert all(m["recipient"] == "*******8000" for m in queued)
        assert desk.get("/v1/outbox", params={"ticket_id": silent}).json() == []
    log = tmp_path / "outbox.jsonl"
    with service[1].state.jiesu.sessions() as session:
        counts = deliver_due(session, LogSender(log))
    assert counts["sent"] >= 2 and counts["failed"] == 0
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    mine = [line for line in lines if line["ticket_id"] == tid]
    assert {line["kind"] for line in mine} == {"reply", "survey"}
    assert all("13800138000" not in json.dumps(line) and "13912345678" not in json.dumps(line) for line in mine)
    with client(base_url, make_key("callback")) as desk:
        assert {m["status"] for m in desk.get("/v1/outbox", params={"ticket_id": tid}).json()} == {"sent"}
    with client(base_url, make_key("reviewer")) as reviewer:
        assert reviewer.get("/v1/outbox").status_code == 403


def test_a_failing_sender_is_retried_with_back_off_and_the_message_ends_failed(service, admin, taxonomy):
    from sqlalchemy import select

    from serving.services.outbox import MAX_ATTEMPTS, deliver_due
    from serving.store.models import OutboxRow

    tid = _replied_ticket(admin, taxonomy, "13700137000")
    at = datetime.now(timezone.utc) + timedelta(seconds=1)
    sessions = service[1].state.jiesu.sessions
    for attempt in range(MAX_ATTEMPTS):
        with sessions() as session:
            deliver_due(session, Flaky(), at=at)
            rows = session.scalars(select(OutboxRow).where(OutboxRow.ticket_id == tid)).all()
            assert all(r.attempts == attempt + 1 for r in rows)
            if attempt < MAX_ATTEMPTS - 1:
                assert all(r.status == "queued" and r.next_attempt_at > at for r in rows)
                with sessions() as other:  # this ticket's messages are not due again before their back-off
                    deliver_due(other, Flaky(), at=at)
                    again = other.scalars(select(OutboxRow).where(OutboxRow.ticket_id == tid)).all()
                    assert all(r.attempts == attempt + 1 for r in again)
                at = max(r.next_attempt_at for r in rows) + timedelta(seconds=1)
    with sessions() as session:
        rows = session.scalars(select(OutboxRow).where(OutboxRow.ticket_id == tid)).all()
    assert {r.status for r in rows} == {"failed"} and all("gateway unreachable" in r.last_error for r in rows)


def test_the_cli_delivers_and_lists_and_a_bad_sender_is_one_line(service, admin, taxonomy, database_url, data_dir,
                                                                 tmp_path):
    tid = _replied_ticket(admin, taxonomy, "13600136000")
    env = {**os.environ, "JIESU_DATABASE_URL": database_url, "JIESU_DATA_DIR": str(data_dir),
           "JIESU_OUTBOX_LOG": str(tmp_path / "cli.jsonl")}
    delivered = subprocess.run([sys.executable, "-m", "serving.cli", "outbox", "deliver"], capture_output=True,
                               text=True, env=env, timeout=120)
    assert delivered.returncode == 0 and delivered.stdout.startswith("sent "), delivered.stderr
    listed = subprocess.run([sys.executable, "-m", "serving.cli", "outbox", "list", "--ticket", str(tid)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0 and "13600136000" not in listed.stdout and "\tsent\t" in listed.stdout
    bad = subprocess.run([sys.executable, "-m", "serving.cli", "outbox", "deliver"], capture_output=True, text=True,
                         env={**env, "JIESU_OUTBOX_SENDER": "no_such_module:Sender"}, timeout=120)
    assert bad.returncode == 2 and "outbox sender" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
