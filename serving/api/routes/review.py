"""The review queue: tickets a person must route, with the model's suggestions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from serving.api.deps import Reviewer, TicketServiceDep
from serving.api.schemas import ReviewItem
from serving.domain.enums import EventKind
from serving.domain.privacy import mask

router = APIRouter(prefix="/v1/review", tags=["review"])


def review_reasons(ticket) -> list[str]:
    """Every reason the ticket waits since it was last dispatched: the router's (no place, low confidence …),
    a unit's return, a missed review deadline."""
    reasons: list[str] = []
    for event in reversed(ticket.events):
        if event.kind in (EventKind.DISPATCHED, EventKind.ASSIGNED):
            break
        if event.kind == EventKind.QUEUED_FOR_REVIEW:
            reasons += list(event.payload.get("reasons", []))
        elif event.kind == EventKind.RETURNED:
            reasons.append("returned")
        elif event.kind == EventKind.SUPERVISED and event.payload.get("overdue") == "review":
            reasons.append("review_overdue")
    return list(dict.fromkeys(reversed(reasons)))


@router.get("/queue", response_model=list[ReviewItem], summary="Tickets waiting for a reviewer")
def review_queue(svc: TicketServiceDep, actor: Reviewer,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> list[ReviewItem]:
    items = []
    for ticket in svc.review_queue(limit, offset):
        items.append(ReviewItem(
            ticket_id=ticket.id, received_at=ticket.received_at, title=mask(ticket.title), text=mask(ticket.text),
            reasons=review_reasons(ticket), suggestions=[tuple(x) for x in ticket.classification.get("category_top3", [])],
            district=ticket.classification.get("district"), street=ticket.classification.get("street")))
    return items
