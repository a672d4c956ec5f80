"""The ticket's workflow: which action is allowed in which state, by whom — and what it does.

``apply(state, action, body, actor, at, context) -> (new_state, events)`` is pure: it reads the ticket as
plain data, checks the action, and returns the ticket as the action leaves it with the events that record
the change. The service loads the ticket, calls ``apply`` and persists both; nothing else changes a ticket.
Every field a score reads (acceptance times, deadlines, evaluation, the group and long-standing flags) is
changed together with an event that carries it.

States: ``review`` (a person must route it) → ``dispatched`` (sent to units) → ``accepted`` (签收 by the
primary unit) → ``replied`` (答复) → ``evaluated`` (回访) → ``closed``.

Rules:
- ``accept``: a unit the ticket is with, from dispatched or accepted; the ticket is accepted when its
  primary unit accepts; a co-unit's acceptance is recorded for its own response rate.
- ``return`` (退单): a unit the ticket is with, before replying; the ticket goes to review, to be routed
  within the profile's ``review_hours``.
- ``assign`` (派单/改派): a reviewer, in any state but closed; the ticket is dispatched anew. The reviewer
  may correct the category (any level), urgency, type and the group / long-standing flags; a street as
  primary unit is where it happens, so the place follows it. The response deadline counts from now, the
  resolution deadline from receipt. The event says whether it corrected the router (then it is training
  data) and which department and company the chosen units name.
- ``whistle`` (吹哨): the primary unit, once accepted; the named units must ``report-in`` (报到) within the
  profile's ``report_in_hours``, which counts in their response rate.
- ``report-in``: a whistled unit, while the ticket is accepted or replied, with what it did.
- ``note``: any unit the ticket is with (whistled units too), or a reviewer, while open.
- ``reply`` (答复): the primary unit, once accepted; a whistled unit may reply on its part, which records
  its answer and leaves the ticket where it is.
- ``evaluate`` (回访): the callback role, once replied.
- ``reopen`` (重办): a reviewer or the callback role, after a reply, evaluation or closing; back to
  dispatched, the reopened round with its own response and resolution deadlines (the earlier rounds'
  history stays).
- ``close``: a reviewer or the callback role, once evaluated or replied.
- ``mark-unreasonable``: a reviewer, at any time, closed tickets included.
The admin role may do everything a reviewer and the callback role may; a unit acts only for itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from serving.domain.actions import InvalidAction, parse_body
from serving.domain.dispatch import deadlines
from serving.domain.enums import OPEN_STATUSES, EventKind, Mode, Role, Status, UnitRole
from taxonomy.categories import CategoryTree
from taxonomy.urgency import UrgencyScheme

OPEN_STATES = frozenset(OPEN_STATUSES)
ALL_STATES = frozenset(Status)
ROLES = tuple(Role)


@dataclass(frozen=True)
class ActionRule:
    from_states: frozenset[str]
    roles: frozenset[str]
    to_state: str | None  # None: the state does not change (or depends on who acts, see accept)
    unit_must_be: str | None = None  # "assigned" (primary or co), "primary", "whistled", or "… _or_whistled"


RULES: dict[str, ActionRule] = {
    "accept": ActionRule(frozenset({Status.DISPATCHED, Status.ACCEPTED}), frozenset({Role.UNIT}), None, "assigned"),
    "return": ActionRule(frozenset({Status.DISPATCHED, Status.ACCEPTED}), frozenset({Role.UNIT}), Status.REVIEW,
                         "assigned"),
    "assign": ActionRule(OPEN_STATES, frozenset({Role.REVIEWER, Role.ADMIN}), Status.DISPATCHED),
    "whistle": ActionRule(frozenset({Status.ACCEPTED}), frozenset({Role.UNIT}), None, "primary"),
    "report-in": ActionRule(frozenset({Status.ACCEPTED, Status.REPLIED}), frozenset({Role.UNIT}), None, "whistled"),
    "note": ActionRule(OPEN_STATES, frozenset({Role.UNIT, Role.REVIEWER, Role.ADMIN}), None, "assigned_or_whistled"),
    "reply": ActionRule(frozenset({Status.ACCEPTED}), frozenset({Role.UNIT}), Status.REPLIED, "primary_or_whistled"),
    "evaluate": ActionRule(frozenset({Status.REPLIED}), frozenset({Role.CALLBACK, Role.ADMIN}), Status.EVALUATED),
    "reopen": ActionRule(frozenset({Status.REPLIED, Status.EVALUATED, Status.CLOSED}),
                         frozenset({Role.REVIEWER, Role.CALLBACK, Role.ADMIN}), Status.DISPATCHED),
    "close": ActionRule(frozenset({Status.REPLIED, Status.EVALUATED}),
                        frozenset({Role.REVIEWER, Role.CALLBACK, Role.ADMIN}), Status.CLOSED),
    "mark-unreasonable": ActionRule(ALL_STATES, frozenset({Role.REVIEWER, Role.ADMIN}), None),
}


class IllegalTransition(Exception):
    """The action is not allowed in the ticket's current state (HTTP 409)."""

    def __init__(self, action: str, status: str, reason: str | None = None):
        self.action, self.status = action, status
        allowed = ", ".join(sorted(RULES[action].from_states)) if action in RULES else "-"
        super().__init__(reason or f"cannot {action} a ticket in state {status!r} (allowed from: {allowed})")


class NotPermitted(Exception):
    """The actor may not take this action on this ticket (HTTP 403)."""


@dataclass(frozen=True)
class Actor:
    role: str
    unit_id: str | None = None
    key_id: int | None = None

    @property
    def name(self) -> str:
        if self.role == Role.UNIT and self.unit_id:
            return self.unit_id
        return f"{self.role}:{self.key_id}" if self.key_id is not None else str(self.role)


@dataclass(frozen=True)
class UnitState:
    unit_id: str
    role: str  # UnitRole
    assigned_at: datetime
    respond_by: datetime | None = None
    accepted_at: datetime | None = None
    active: bool = True


@dataclass(frozen=True)
class TicketState:
    """A ticket as the workflow reads and writes it."""

    status: str
    mode: str
    received_at: datetime
    category: str
    urgency: int
    appeal_type: str
    primary_unit_id: str | None = None
    respond_by: datetime | None = None
    resolve_by: datetime | None = None
    accepted_at: datetime | None = None
    street_id: str | None = None
    district_id: str | None = None
    department_id: str | None = None
    company_id: str | None = None
    resolved: bool | None = None
    satisfaction: str | None = None
    group_appeal: bool = False
    long_standing: bool = False
    unreasonable: bool = False
    classification: dict = field(default_factory=dict)
    units: tuple[UnitState, ...] = ()

    def active(self, *roles: str) -> list[UnitState]:
        return [u for u in self.units if u.active and (not roles or u.role in roles)]


@dataclass(frozen=True)
class NewEvent:
    kind: str
    actor: str
    at: datetime
    unit_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UnitInfo:
    kind: str
    district_code: str | None = None
    department_id: str | None = None


@dataclass(frozen=True)
class Context:
    """What actions look up: deadlines per urgency level, the tree, the types and the unit registry."""

    urgency: UrgencyScheme
    categories: CategoryTree
    appeal_types: tuple[str, ...]
    unit: Callable[[str], UnitInfo | None]
    review_hours: float = 2.0
    report_in_hours: float = 24.0


def check(action: str, status: str, actor: Actor, *, primary: str | None, assigned: set[str],
          whistled: set[str]) -> str | None:
    """Raise when the action is not allowed; return the state the ticket moves to (None: unchanged)."""
    rule = RULES.get(action)
    if rule is None:
        raise ValueError(f"unknown action {action!r}")
    if actor.role not in rule.roles and not (actor.role == Role.ADMIN and rule.unit_must_be is None):
        raise NotPermitted(f"the {actor.role} role may not {action}")
    if status not in rule.from_states:
        raise IllegalTransition(action, status)
    if actor.role == Role.UNIT and rule.unit_must_be:
        sets = {"assigned": assigned, "primary": {primary} if primary else set(), "whistled": whistled}
        allowed = set().union(*(sets[name] for name in rule.unit_must_be.split("_or_")))
        if actor.unit_id not in allowed:
            raise NotPermitted(f"unit {actor.unit_id} may not {action} this ticket")
    if action == "accept":
        return Status.ACCEPTED if actor.unit_id == primary else status
    if action == "reply" and actor.role == Role.UNIT and actor.unit_id != primary:
        return status  # a whistled unit's part
    return rule.to_state


def apply(state: TicketState, action: str, body: dict, actor: Actor, at: datetime,
          context: Context) -> tuple[TicketState, list[NewEvent]]:
    """Check the action and carry it out: the ticket as it leaves it, and the events recording it."""
    assigned = {u.unit_id for u in state.active(UnitRole.PRIMARY, UnitRole.CO)}
    whistled = {u.unit_id for u in state.active(UnitRole.WHISTLED)}
    target = check(action, state.status, actor, primary=state.primary_unit_id, assigned=assigned, whistled=whistled)
    parsed = parse_body(action, body)
    handler = _HANDLERS[action]
    return handler(state, parsed, actor, at, context, target)


def _event(kind: str, actor: Actor, at: datetime, unit_id: str | None = None, **payload) -> NewEvent:
    return NewEvent(str(kind), actor.name, at, unit_id, payload)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _accept(state, body, actor, at, context, target):
    mine = [u for u in state.units if u.active and u.unit_id == actor.unit_id and u.role in (UnitRole.PRIMARY, UnitRole.CO)]
    if mine and all(u.accepted_at is not None for u in mine):
        raise IllegalTransition("accept", state.status, f"unit {actor.unit_id} has already accepted this ticket")
    units = tuple(replace(u, accepted_at=at) if u.active and u.unit_id == actor.unit_id
                  and u.role in (UnitRole.PRIMARY, UnitRole.CO) and u.accepted_at is None else u for u in state.units)
    accepted_at = at if actor.unit_id == state.primary_unit_id and state.accepted_at is None else state.accepted_at
    new = replace(state, status=target, units=units, accepted_at=accepted_at)
    return new, [_event(EventKind.ACCEPTED, actor, at, actor.unit_id)]


def _return(state, body, actor, at, context, target):
    units = tuple(replace(u, active=False) for u in state.units)
    review_by = at + timedelta(hours=context.review_hours)
    new = replace(state, status=Status.REVIEW, mode=Mode.REVIEW, primary_unit_id=None, accepted_at=None, units=units,
                  respond_by=review_by)
    return new, [_event(EventKind.RETURNED, actor, at, actor.unit_id, reason=body.reason, review_by=_iso(review_by))]


def _unit(context: Context, unit_id: str, field_name: str) -> UnitInfo:
    info = context.unit(unit_id)
    if info is None:
        raise InvalidAction(field_name, f"unknown unit {unit_id!r}")
    return info


def _assign(state, body, actor, at, context, target):
    primary = _unit(context, body.primary_unit_id, "primary_unit_id")
    co = [u for u in dict.fromkeys(body.co_unit_ids) if u != body.primary_unit_id]
    infos = {u: _unit(context, u, "co_unit_ids") for u in co}
    before = {"category": state.category, "urgency": state.urgency, "appeal_type": state.appeal_type,
              "department": state.department_id, "company": state.company_id}
    changes: dict[str, Any] = {}
    if primary.kind == "street":  # the reviewer's street is where it happens: the place follows
        changes.update(street_id=body.primary_unit_id, district_id=f"district:{primary.district_code}")
    if body.category is not None:
        node = context.categories.find(body.category)
        if node is None:
            raise InvalidAction("category", f"{body.category!r} is not in the category tree")
        changes["category"] = node.label
    elif not state.category:
        raise InvalidAction("category", "this ticket has no category yet (it was received without a model): "
                                        "give one")
    if body.urgency is not None:
        changes["urgency"] = body.urgency
    if body.appeal_type is not None:
        if body.appeal_type not in context.appeal_types:
            raise InvalidAction("appeal_type", f"must be one of {', '.join(context.appeal_types)}")
        changes["appeal_type"] = body.appeal_type
    flags = {name: getattr(body, name) for name in ("group_appeal", "long_standing")
             if getattr(body, name) is not None}
    changes.update(flags)
    department = next((i.department_id for i in [primary, *infos.values()] if i.kind == "department"), None)
    company = next((u.split(":", 1)[1] for u in [body.primary_unit_id, *co]
                    if (infos.get(u) or primary).kind == "company"), None)
    if department is not None:
        changes["department_id"] = department
    changes["company_id"] = company
    state = replace(state, **changes)
    respond_by, _ = deadlines(state.urgency, at, context.urgency)
    _, resolve_by = deadlines(state.urgency, state.received_at, context.urgency)
    predicted = state.classification
    corrected = (state.category != predicted.get("category") or state.urgency != predicted.get("urgency")
                 or state.appeal_type != predicted.get("appeal_type")
                 or body.primary_unit_id != predicted.get("dispatch_primary_unit_id")
                 or (department is not None and department != predicted.get("department"))
                 or company != predicted.get("company"))
    mode = Mode.JOINT if co else Mode.DIRECT
    units = tuple(replace(u, active=False) for u in state.units) + tuple(
        UnitState(unit_id, role, at, respond_by) for role, unit_id in
        [(UnitRole.PRIMARY, body.primary_unit_id)] + [(UnitRole.CO, u) for u in co])
    new = replace(state, status=Status.DISPATCHED, mode=mode, primary_unit_id=body.primary_unit_id,
                  respond_by=respond_by, resolve_by=resolve_by, accepted_at=None, units=units)
    payload = {"mode": str(mode), "primary_unit_id": body.primary_unit_id, "co_unit_ids": co,
               "respond_by": _iso(respond_by), "resolve_by": _iso(resolve_by), "rule": "reviewer",
               "category": new.category, "urgency": new.urgency, "appeal_type": new.appeal_type,
               "department": new.department_id, "company": new.company_id, "corrected": corrected,
               "before": before, **flags}
    return new, [_event(EventKind.ASSIGNED, actor, at, **payload)]


def _whistle(state, body, actor, at, context, target):
    unit_ids = list(dict.fromkeys(body.unit_ids))
    for unit_id in unit_ids:
        _unit(context, unit_id, "unit_ids")
    report_by = at + timedelta(hours=context.report_in_hours)
    units = state.units + tuple(UnitState(u, UnitRole.WHISTLED, at, report_by) for u in unit_ids)
    new = replace(state, units=units)
    return new, [_event(EventKind.WHISTLED, actor, at, actor.unit_id, unit_ids=unit_ids, note=body.note,
                        report_by=_iso(report_by))]


def _report_in(state, body, actor, at, context, target):
    units = tuple(replace(u, accepted_at=at) if u.active and u.role == UnitRole.WHISTLED
                  and u.unit_id == actor.unit_id and u.accepted_at is None else u for u in state.units)
    payload = {"text": body.text} if body.text else {}
    return replace(state, units=units), [_event(EventKind.REPORTED_IN, actor, at, actor.unit_id, **payload)]


def _note(state, body, actor, at, context, target):
    return state, [_event(EventKind.NOTED, actor, at, actor.unit_id, text=body.text)]


def _reply(state, body, actor, at, context, target):
    part = actor.role == Role.UNIT and actor.unit_id != state.primary_unit_id
    new = replace(state, status=target)
    extra = {"part": True} if part else {}
    return new, [_event(EventKind.REPLIED, actor, at, actor.unit_id, text=body.text, solved=body.solved, **extra)]


def _evaluate(state, body, actor, at, context, target):
    new = replace(state, status=target, resolved=body.resolved, satisfaction=str(body.satisfaction))
    payload = {"resolved": body.resolved, "satisfaction": str(body.satisfaction)}
    if body.comment:
        payload["comment"] = body.comment
    return new, [_event(EventKind.EVALUATED, actor, at, **payload)]


def _reopen(state, body, actor, at, context, target):
    respond_by, resolve_by = deadlines(state.urgency, at, context.urgency)  # the reopened round's own
    units = tuple(replace(u, accepted_at=None, respond_by=respond_by)
                  if u.active and u.role in (UnitRole.PRIMARY, UnitRole.CO) else u for u in state.units)
    new = replace(state, status=target, respond_by=respond_by, resolve_by=resolve_by, accepted_at=None, units=units)
    return new, [_event(EventKind.REOPENED, actor, at, reason=body.reason, respond_by=_iso(respond_by),
                        resolve_by=_iso(resolve_by))]


def _close(state, body, actor, at, context, target):
    return replace(state, status=target), [_event(EventKind.CLOSED, actor, at)]


def _mark_unreasonable(state, body, actor, at, context, target):
    new = replace(state, unreasonable=True)
    return new, [_event(EventKind.MARKED_UNREASONABLE, actor, at, reason=body.reason)]


_HANDLERS = {"accept": _accept, "return": _return, "assign": _assign, "whistle": _whistle, "report-in": _report_in,
             "note": _note, "reply": _reply, "evaluate": _evaluate, "reopen": _reopen, "close": _close,
             "mark-unreasonable": _mark_unreasonable}
