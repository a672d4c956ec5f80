"""Shaping store rows into API answers."""

from __future__ import annotations

from serving.api.schemas import Caller, Category, Classification, Dispatch, EventOut, TicketOut, UnitRef
from serving.domain.privacy import VIEWS, View, shown, shown_payload
from serving.store.models import TicketRow
from taxonomy import Taxonomy


def unit_ref(unit_id: str | None, taxonomy: Taxonomy) -> UnitRef | None:
    if unit_id is None:
        return None
    unit = taxonomy.units.get(unit_id)
    return UnitRef(id=unit_id, name=unit.name if unit else unit_id, kind=unit.kind if unit else "unknown")


def ticket_out(ticket: TicketRow, taxonomy: Taxonomy, with_events: bool = False, view: View = VIEWS["admin"],
               events=None) -> TicketOut:
    """The ticket as ``view`` may see it (``serving.domain.privacy``); ``events``: the ones to show, when
    not all (a unit that no longer has the ticket sees its own part only)."""
    c = ticket.classification
    co = [u.unit_id for u in ticket.units if u.active and u.role == "co"]
    return TicketOut(
        ticket_id=ticket.id, status=ticket.status, received_at=ticket.received_at, channel=ticket.channel,
        title=shown(ticket.title, view), text=shown(ticket.text, view),
        caller=Caller(name=ticket.caller_name, phone=ticket.caller_phone)
        if view.caller and (ticket.caller_name or ticket.caller_phone) else None,
        classification=Classification(
            category=Category(label=ticket.category, confidence=ticket.category_confidence,
                              top3=[tuple(x) for x in c.get("category_top3", [])],
                              path=ticket.category.split("/"), confidences=c.get("category_confidences", []),
                              guess=c.get("category_guess", []), failed_level=c.get("category_failed_level")),
            department=ticket.department_id, department_confidence=c.get("department_confidence"),
            company=ticket.company_id,
            urgency=ticket.urgency, urgency_reason=c.get("urgency_reason", ""), appeal_type=ticket.appeal_type,
            district=c.get("district"), street=c.get("street")),
        dispatch=Dispatch(mode=ticket.mode, primary_unit=unit_ref(ticket.primary_unit_id, taxonomy),
                          co_units=[unit_ref(u, taxonomy) for u in co],
                          respond_by=ticket.respond_by, resolve_by=ticket.resolve_by),
        unreasonable=ticket.unreasonable, group_appeal=ticket.group_appeal, long_standing=ticket.long_standing,
        group_id=ticket.group_id, duplicate_of=ticket.duplicate_of,
        events=[EventOut(id=e.id, kind=e.kind, actor=e.actor, unit_id=e.unit_id, at=e.at,
                         payload=shown_payload(e.payload, view))
                for e in (ticket.events if events is None else events)] if with_events else None,
    )
