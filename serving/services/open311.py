"""Open311 GeoReport v2: the standard interface 311 front-ends speak (FixMyStreet, SeeClickFix …).

Rules this module implements:
- the services are the category tree's leaves (level-3 nodes, and level-2 nodes that have none); a
  service's code is stable across reorderings of the tree: ``c`` and the first 8 hex digits of the
  SHA-256 of its path; its ``group`` is the first-level name, its ``keywords`` the node's signal
  phrases, ``metadata`` false (no extra attributes are asked), ``type`` ``batch`` (a ticket, not a
  realtime answer);
- a request without ``service_code`` is routed by the router; with one, the caller's choice sets the
  path, its owner and company (the router still reads urgency, type and place);
- a request's ``status`` is ``closed`` once the unit has answered (replied, evaluated, closed) and
  ``open`` before; ``status_notes`` is the latest reply; ``agency_responsible`` the primary unit;
  ``expected_datetime`` the resolution deadline; ``description`` is masked as analysts see it, and no
  caller data is shown;
- ``GET /requests`` without dates covers the last 90 days, at most 1,000 requests, newest first.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from serving.domain.enums import EventKind, Role, Status
from serving.domain.privacy import MASKED, shown
from serving.store.models import TicketRow, TicketUnitRow
from taxonomy import Taxonomy
from taxonomy.categories import Category, CategoryTree

CLOSED = (Status.REPLIED, Status.EVALUATED, Status.CLOSED)
DEFAULT_DAYS = 90
MAX_REQUESTS = 1000


class Open311Error(Exception):
    """An error in the spec's shape: ``[{"code": …, "description": …}]`` with that HTTP status."""

    def __init__(self, code: int, description: str):
        super().__init__(description)
        self.code, self.description = code, description

    def body(self) -> list[dict]:
        return [{"code": self.code, "description": self.description}]


def service_code(node: Category) -> str:
    return "c" + hashlib.sha256(node.label.encode("utf-8")).hexdigest()[:8]


@dataclass(frozen=True)
class Catalogue:
    by_code: dict[str, Category]
    code_of: dict[str, str]  # category label -> service code

    @classmethod
    def of(cls, tree: CategoryTree) -> "Catalogue":
        by_code = {service_code(n): n for n in tree.walk() if not n.children and n.level >= 2}
        return cls(by_code, {node.label: code for code, node in by_code.items()})

    def services(self) -> list[dict]:
        return [_service(code, node) for code, node in self.by_code.items()]

    def find(self, code: str) -> Category:
        node = self.by_code.get(code)
        if node is None:
            raise Open311Error(404, f"service_code {code!r} is not a service of this hotline")
        return node


def _service(code: str, node: Category) -> dict:
    return {"service_code": code, "service_name": node.name, "description": node.description or "/".join(node.path),
            "metadata": False, "type": "batch", "keywords": ",".join(node.keywords), "group": node.path[0]}


def definition(catalogue: Catalogue, code: str) -> dict:
    catalogue.find(code)
    return {"service_code": code, "attributes": []}


@lru_cache(maxsize=4)
def catalogue_of(tree: CategoryTree) -> Catalogue:
    """The services of a loaded tree, built once per tree."""
    return Catalogue.of(tree)


def request_out(ticket: TicketRow, taxonomy: Taxonomy, catalogue: Catalogue) -> dict:
    replies = [e for e in ticket.events if e.kind == EventKind.REPLIED]
    unit = taxonomy.units.get(ticket.primary_unit_id) if ticket.primary_unit_id else None
    updated = max((e.at for e in ticket.events), default=ticket.received_at)
    node = taxonomy.categories.find(ticket.category) if ticket.category else None
    return {
        "service_request_id": str(ticket.id),
        "status": "closed" if ticket.status in CLOSED else "open",
        "status_notes": shown(replies[-1].payload.get("text"), MASKED) if replies else None,
        "service_name": node.name if node else None,
        "service_code": catalogue.code_of.get(ticket.category) if ticket.category else None,
        "description": shown(ticket.text, MASKED),
        "agency_responsible": unit.name if unit else None,
        "service_notice": None,
        "requested_datetime": _iso(ticket.received_at),
        "updated_datetime": _iso(updated),
        "expected_datetime": _iso(ticket.resolve_by),
        "address": ticket.address,
        "address_id": None, "zipcode": None, "lat": None, "long": None, "media_url": None,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def parse_datetime(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name}: {value!r} is not a W3C date-time (2026-11-02T09:00:00+08:00)") from None
    if moment.tzinfo is None:
        raise Open311Error(400, f"{name}: give a timezone, e.g. 2026-11-02T09:00:00+08:00")
    return moment


def find_requests(session: Session, catalogue: Catalogue, actor, *, ids: list[int] | None = None,
                  codes: list[str] | None = None, start: datetime | None = None, end: datetime | None = None,
                  statuses: list[str] | None = None, now: datetime | None = None) -> list[TicketRow]:
    """The tickets a GET /requests asks for that ``actor`` may read (a unit: its own, intake: those it
    received), newest first."""
    query = select(TicketRow).options(selectinload(TicketRow.events), selectinload(TicketRow.units))
    if ids:
        query = query.where(TicketRow.id.in_(ids))
    else:
        end = end or now or datetime.now(timezone.utc)
        start = start or end - timedelta(days=DEFAULT_DAYS)
        query = query.where(TicketRow.received_at >= start, TicketRow.received_at <= end)
    if codes:
        query = query.where(TicketRow.category.in_([catalogue.find(c).label for c in codes]))
    if statuses:
        wanted = set()
        for status in statuses:
            if status not in ("open", "closed"):
                raise Open311Error(400, f"status: {status!r} is not open or closed")
            wanted |= set(CLOSED) if status == "closed" else set(Status) - set(CLOSED)
        query = query.where(TicketRow.status.in_(sorted(wanted)))
    if actor.role == Role.UNIT:
        query = query.where(TicketRow.id.in_(select(TicketUnitRow.ticket_id).where(TicketUnitRow.unit_id == actor.unit_id)))
    elif actor.role == Role.INTAKE:
        query = query.where(TicketRow.received_by == actor.name)
    return list(session.scalars(query.order_by(TicketRow.received_at.desc(), TicketRow.id.desc()).limit(MAX_REQUESTS)))
