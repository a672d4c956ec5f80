"""督办: which overdue flags a ticket is due, as plain data.

Rules:
- three deadlines can be missed: ``review`` (a ticket waiting for a reviewer past its review deadline),
  ``respond`` (dispatched, not accepted by its response deadline) and ``resolve`` (dispatched or accepted,
  not replied by its resolution deadline); a ticket past two is flagged for each;
- each missed deadline is flagged once per level: ``unit`` when it is missed; ``district`` once the time
  taken reaches ``district_after`` times the time allowed (counted from when the deadline was set); ``city``
  at ``city_after`` times. A sweep that comes late raises every level reached, in order, so the history
  shows the escalation;
- a flag already raised for the same deadline (the same kind, deadline and level) is not raised again;
  a new deadline (a re-dispatch, a reopening) starts over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from serving.domain.enums import Status
from taxonomy.dispatch import Supervision


@dataclass(frozen=True)
class Deadline:
    kind: str  # review | respond | resolve
    due: datetime
    since: datetime  # when it was set


@dataclass(frozen=True)
class Flag:
    kind: str
    level: str  # unit | district | city
    due: datetime


def deadlines_of(status: str, respond_by: datetime | None, resolve_by: datetime | None, set_at: datetime,
                 received_at: datetime, reopened: bool = False) -> list[Deadline]:
    """The deadlines that bind a ticket in its state; ``set_at`` is when its latest dispatch (or review, or
    reopening) set the response deadline. The resolution deadline counts from receipt, or from the
    reopening that gave the round its own."""
    out = []
    if status == Status.REVIEW and respond_by is not None:
        out.append(Deadline("review", respond_by, set_at))
    if status == Status.DISPATCHED and respond_by is not None:
        out.append(Deadline("respond", respond_by, set_at))
    if status in (Status.DISPATCHED, Status.ACCEPTED) and resolve_by is not None:
        out.append(Deadline("resolve", resolve_by, set_at if reopened else received_at))
    return out


def due_flags(deadlines: list[Deadline], raised: set[tuple[str, str, str]], at: datetime,
              rules: Supervision) -> list[Flag]:
    """The flags to raise now; ``raised`` holds (kind, due ISO time, level) of the flags raised before."""
    flags = []
    for deadline in deadlines:
        if at <= deadline.due:
            continue
        allowed = (deadline.due - deadline.since).total_seconds()
        taken = (at - deadline.since).total_seconds()
        factor = taken / allowed if allowed > 0 else float("inf")
        levels = ["unit"] + (["district"] if factor >= rules.district_after else []) + \
            (["city"] if factor >= rules.city_after else [])
        for level in levels:
            if (deadline.kind, deadline.due.isoformat(), level) not in raised:
                flags.append(Flag(deadline.kind, level, deadline.due))
    return flags
