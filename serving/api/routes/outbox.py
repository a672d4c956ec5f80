"""GET /v1/outbox: the messages to citizens and their delivery (点对点反馈), for the callback desk and admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from serving.api.deps import SessionDep, role
from serving.domain.privacy import mask_phone
from serving.domain.workflow import Actor
from serving.services.outbox import list_messages

router = APIRouter(prefix="/v1", tags=["citizens"])
CallbackDesk = Annotated[Actor, Depends(role("callback"))]


class MessageOut(BaseModel):
    id: int
    ticket_id: int
    kind: str
    recipient: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@router.get("/outbox", response_model=list[MessageOut], summary="Messages to citizens and their delivery")
def outbox(session: SessionDep, actor: CallbackDesk,
           status: Literal["queued", "sent", "failed"] | None = None,
           ticket_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[MessageOut]:
    return [MessageOut(id=m.id, ticket_id=m.ticket_id, kind=m.kind, recipient=mask_phone(m.recipient), status=m.status,
                       attempts=m.attempts, last_error=m.last_error, created_at=m.created_at, sent_at=m.sent_at)
            for m in list_messages(session, status, ticket_id, limit)]
