"""点对点反馈: messages to citizens go through an outbox, one delivery record per message.

Rules this module implements:
- when a unit replies (答复) to a ticket filed with a phone, two messages are queued in the same
  transaction as the reply: the reply itself and the callback survey (回访) asking how satisfied the
  citizen is; a ticket without a phone queues nothing;
- ``deliver_due`` sends what is due through a sender: sent on success; on failure the attempt is counted,
  the error kept, the next try put off (1, 2, 4, 8 minutes …) and after ``MAX_ATTEMPTS`` the message is
  ``failed`` — never silently dropped. Delivery runs in the one process that leads it (``store.locks``),
  and rows are claimed with ``SKIP LOCKED`` on PostgreSQL so that two deliverers never send one message;
- senders are pluggable: ``log`` (the default) appends each message to a JSON-lines file with the phone
  and the text masked — a stand-in that records what would go out; ``module:Class`` names a class with
  ``send(message)`` (an SMS or WeChat gateway) that raises on failure.
"""

from __future__ import annotations

import importlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.domain.privacy import mask, mask_phone
from serving.store.locks import is_postgres
from serving.store.models import OutboxRow, TicketRow

MAX_ATTEMPTS = 5
SURVEY = ("【接诉即办】您反映的诉求（编号{id}）已答复。请回复数字评价：1 已解决 2 未解决；"
          "满意程度：A 满意 B 基本满意 C 不满意。")


class Sender(Protocol):
    def send(self, message: OutboxRow) -> None: ...


class LogSender:
    """Writes each message as a JSON line (phone and text masked): what an SMS gateway would be given."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def send(self, message: OutboxRow) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"id": message.id, "ticket_id": message.ticket_id, "kind": message.kind,
                                  "to": mask_phone(message.recipient), "body": mask(message.body),
                                  "at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
                                 ensure_ascii=False) + "\n")


def load_sender(spec: str, log_path: str | Path) -> Sender:
    """``log`` or ``package.module:Class`` (instantiated with no arguments)."""
    if spec == "log":
        return LogSender(log_path)
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"outbox sender: {spec!r} is neither 'log' nor 'module:Class'")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"outbox sender: cannot load {spec!r} ({exc})") from None
    return cls()


def queue_reply(session: Session, ticket: TicketRow, reply_text: str, at: datetime) -> list[OutboxRow]:
    if not ticket.caller_phone:
        return []
    rows = [OutboxRow(ticket_id=ticket.id, kind="reply", recipient=ticket.caller_phone, status="queued",
                      body=f"【接诉即办】您反映的诉求（编号{ticket.id}）答复如下：{reply_text}", attempts=0,
                      created_at=at, next_attempt_at=at),
            OutboxRow(ticket_id=ticket.id, kind="survey", recipient=ticket.caller_phone, status="queued",
                      body=SURVEY.format(id=ticket.id), attempts=0, created_at=at, next_attempt_at=at)]
    session.add_all(rows)
    return rows


def deliver_due(session: Session, sender: Sender, at: datetime | None = None, limit: int = 100) -> dict[str, int]:
    """Send the due messages; counts of sent, retried and failed."""
    at = at or datetime.now(timezone.utc)
    query = select(OutboxRow).where(OutboxRow.status == "queued", OutboxRow.next_attempt_at <= at) \
        .order_by(OutboxRow.next_attempt_at, OutboxRow.id).limit(limit)
    if is_postgres(session.get_bind()):
        query = query.with_for_update(skip_locked=True)
    counts = {"sent": 0, "retried": 0, "failed": 0}
    for message in session.scalars(query).all():
        try:
            sender.send(message)
        except Exception as exc:  # noqa: BLE001 - any sender failure is recorded and retried
            message.attempts += 1
            message.last_error = f"{type(exc).__name__}: {exc}"[:300]
            if message.attempts >= MAX_ATTEMPTS:
                message.status = "failed"
                counts["failed"] += 1
            else:
                message.next_attempt_at = at + timedelta(minutes=2 ** (message.attempts - 1))
                counts["retried"] += 1
        else:
            message.attempts += 1
            message.status, message.sent_at = "sent", at
            counts["sent"] += 1
    session.commit()
    return counts


def list_messages(session: Session, status: str | None = None, ticket_id: int | None = None,
                  limit: int = 100) -> list[OutboxRow]:
    query = select(OutboxRow).order_by(OutboxRow.id.desc()).limit(limit)
    if status:
        query = query.where(OutboxRow.status == status)
    if ticket_id:
        query = query.where(OutboxRow.ticket_id == ticket_id)
    return list(session.scalars(query))
