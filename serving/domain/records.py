"""Plain records the domain works on; the store maps them to and from rows.

A ticket's history is a list of events; everything else about a ticket (status, assigned units,
whether it was answered on time, its evaluation) is derived from or checked against those events.

Event kinds (``EventKind``) and their ``payload``:
- ``received``       {channel, text_chars}                 the appeal arrived (actor: intake)
- ``classified``     {category, category_confidence, category_top3, urgency, urgency_reason,
                      appeal_type, district_id, street_id, model}
- ``dispatched``     {mode, primary_unit_id, co_unit_ids, respond_by, resolve_by, rule}
                     (mode: direct | joint | review; also written by a reviewer's ``assign``)
- ``queued_for_review`` {reasons}
- ``accepted``       {} by a unit (签收)
- ``returned``       {reason} by a unit (退单)
- ``assigned``       {primary_unit_id, co_unit_ids, category?, urgency?, corrected: bool} by a reviewer (改派)
- ``whistled``       {unit_ids, note} by a unit (吹哨)
- ``reported_in``    {} by a whistled unit (报到)
- ``noted``          {text}
- ``replied``        {text, solved} by a unit (答复)
- ``evaluated``      {resolved, satisfaction} by the callback role (回访)
- ``reopened``       {reason}
- ``closed``         {}
- ``marked_unreasonable`` {reason} by a reviewer
- ``supervised``     {overdue: respond|resolve} by the system (督办)
- ``grouped``        {group_id, size}: the ticket is part of a group appeal (群体性诉求)
- ``urgency_raised`` {from, to, group_id, group_size, resolve_by}: the group grew past a threshold
- ``repeated``       {ticket_id}: the same caller said the same again; that ticket is a closed repeat
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

EventKind = Literal[
    "received", "classified", "dispatched", "queued_for_review", "accepted", "returned", "assigned",
    "whistled", "reported_in", "noted", "replied", "evaluated", "reopened", "closed", "marked_unreasonable",
    "supervised", "grouped", "urgency_raised", "repeated",
]
TicketStatus = Literal["review", "dispatched", "accepted", "replied", "evaluated", "closed"]
DispatchMode = Literal["direct", "joint", "review"]
Satisfaction = Literal["satisfied", "basically_satisfied", "dissatisfied"]


@dataclass(frozen=True)
class Event:
    kind: EventKind
    at: datetime
    actor: str  # "system", "intake", a unit id, or "key:<id>" of a reviewer / callback operator
    unit_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Assignment:
    """Who a ticket is with now: one primary unit and any co-units, with the response deadline."""

    primary_unit_id: str
    co_unit_ids: tuple[str, ...]
    respond_by: datetime
    resolve_by: datetime

    @property
    def unit_ids(self) -> tuple[str, ...]:
        return (self.primary_unit_id, *self.co_unit_ids)
