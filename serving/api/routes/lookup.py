"""点对点反馈, the citizen's side: a citizen (or a front-end on their behalf) looks a ticket up by its
number and the phone it was filed with, and sees its status, the deadlines and the replies — masked,
nothing else, no key needed, a bounded number of tries per client address.

Rules: a wrong number and a wrong phone answer the same 404 (the lookup does not tell which tickets
exist); phones compare by their digits; each client address gets ``JIESU_LOOKUP_PER_MINUTE`` tries a
minute (per worker process), then 429 with ``Retry-After``.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from serving.api.deps import StateDep, TicketServiceDep
from serving.domain.enums import STATUS_NAMES, EventKind
from serving.domain.privacy import mask

router = APIRouter(prefix="/v1", tags=["citizens"])


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ticket_id: int = Field(ge=1, le=2**62, description="The ticket number the citizen was given")
    phone: str = Field(min_length=3, max_length=40, pattern=r"^[0-9+\-() ]+$", description="The phone it was filed with")


class ReplyOut(BaseModel):
    at: datetime
    text: str = Field(description="The unit's reply, masked")


class LookupOut(BaseModel):
    ticket_id: int
    status: str
    status_name: str
    received_at: datetime
    respond_by: datetime | None
    resolve_by: datetime | None
    replies: list[ReplyOut]


class _Window:
    """Tries per client address in the last minute."""

    def __init__(self) -> None:
        self.hits: dict[str, deque] = defaultdict(deque)
        self.lock = threading.Lock()

    def allow(self, client: str, limit: int, now: float) -> float | None:
        """None when allowed; else the seconds until the next try is."""
        with self.lock:
            hits = self.hits[client]
            while hits and now - hits[0] >= 60:
                hits.popleft()
            if len(hits) >= limit:
                return 60 - (now - hits[0])
            hits.append(now)
            if len(self.hits) > 100_000:  # forget addresses quiet for a minute (their tries have expired)
                for key in [k for k, v in self.hits.items() if not v or now - v[-1] >= 60]:
                    del self.hits[key]
            return None



@router.post("/lookup", response_model=LookupOut, summary="A citizen looks up their ticket (number + phone)")
def lookup(body: LookupIn, request: Request, state: StateDep, svc: TicketServiceDep) -> LookupOut:
    client = request.client.host if request.client else "unknown"
    window = getattr(request.app.state, "lookup_window", None)
    if window is None:
        window = request.app.state.lookup_window = _Window()
    wait = window.allow(client, state.settings.lookup_per_minute, time.monotonic())
    if wait is not None:
        raise HTTPException(429, "too many lookups from this address; try again in a minute",
                            headers={"Retry-After": str(max(1, int(wait) + 1))})
    ticket = svc.lookup(body.ticket_id, body.phone)
    if ticket is None:
        raise HTTPException(404, "no ticket with this number and phone")
    replies = [ReplyOut(at=e.at, text=mask(e.payload.get("text") or "")) for e in ticket.events
               if e.kind == EventKind.REPLIED]
    return LookupOut(ticket_id=ticket.id, status=ticket.status, status_name=STATUS_NAMES.get(ticket.status, ticket.status),
                     received_at=ticket.received_at, respond_by=ticket.respond_by, resolve_by=ticket.resolve_by,
                     replies=replies)
