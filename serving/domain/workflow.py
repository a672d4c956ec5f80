"""The ticket's state machine: which action is allowed in which state, by whom, and where it leads.

States: ``review`` (a person must route it) → ``dispatched`` (sent to units) → ``accepted`` (签收 by the
primary unit) → ``replied`` (答复) → ``evaluated`` (回访) → ``closed``.

Rules:
- ``accept``: a unit the ticket is with, from dispatched or accepted; the ticket is accepted when its
  primary unit accepts; a co-unit's acceptance is recorded for its own response rate.
- ``return`` (退单): a unit the ticket is with, before replying; the ticket goes to review.
- ``assign`` (派单/改派): a reviewer, in any state but closed; the ticket is dispatched anew.
- ``whistle`` (吹哨): the primary unit, once accepted; the named units must ``report-in`` (报到).
- ``report-in``: a whistled unit, while the ticket is accepted or replied.
- ``note``: any unit the ticket is with, or a reviewer, while open.
- ``reply`` (答复): the primary unit, once accepted.
- ``evaluate`` (回访): the callback role, once replied.
- ``reopen``: a reviewer or the callback role, after a reply, evaluation or closing; back to dispatched.
- ``close``: a reviewer or the callback role, once evaluated or replied.
- ``mark-unreasonable``: a reviewer, at any time, closed tickets included.
The admin role may do everything a reviewer and the callback role may; a unit acts only for itself.
"""

from __future__ import annotations

from dataclasses import dataclass

OPEN_STATES = frozenset({"review", "dispatched", "accepted", "replied", "evaluated"})
ALL_STATES = OPEN_STATES | {"closed"}
ROLES = ("intake", "unit", "reviewer", "callback", "analyst", "admin")


@dataclass(frozen=True)
class ActionRule:
    from_states: frozenset[str]
    roles: frozenset[str]
    to_state: str | None  # None: the state does not change (or depends on who acts, see accept)
    unit_must_be: str | None = None  # "assigned" (primary or co), "primary", "whistled"


RULES: dict[str, ActionRule] = {
    "accept": ActionRule(frozenset({"dispatched", "accepted"}), frozenset({"unit"}), None, "assigned"),
    "return": ActionRule(frozenset({"dispatched", "accepted"}), frozenset({"unit"}), "review", "assigned"),
    "assign": ActionRule(OPEN_STATES, frozenset({"reviewer", "admin"}), "dispatched"),
    "whistle": ActionRule(frozenset({"accepted"}), frozenset({"unit"}), None, "primary"),
    "report-in": ActionRule(frozenset({"accepted", "replied"}), frozenset({"unit"}), None, "whistled"),
    "note": ActionRule(OPEN_STATES, frozenset({"unit", "reviewer", "admin"}), None, "assigned"),
    "reply": ActionRule(frozenset({"accepted"}), frozenset({"unit"}), "replied", "primary"),
    "evaluate": ActionRule(frozenset({"replied"}), frozenset({"callback", "admin"}), "evaluated"),
    "reopen": ActionRule(frozenset({"replied", "evaluated", "closed"}), frozenset({"reviewer", "callback", "admin"}),
                         "dispatched"),
    "close": ActionRule(frozenset({"replied", "evaluated"}), frozenset({"reviewer", "callback", "admin"}), "closed"),
    "mark-unreasonable": ActionRule(ALL_STATES, frozenset({"reviewer", "admin"}), None),
}


class IllegalTransition(Exception):
    """The action is not allowed in the ticket's current state (HTTP 409)."""

    def __init__(self, action: str, status: str):
        self.action, self.status = action, status
        allowed = ", ".join(sorted(RULES[action].from_states)) if action in RULES else "-"
        super().__init__(f"cannot {action} a ticket in state {status!r} (allowed from: {allowed})")


class NotPermitted(Exception):
    """The actor may not take this action on this ticket (HTTP 403)."""


@dataclass(frozen=True)
class Actor:
    role: str
    unit_id: str | None = None
    key_id: int | None = None

    @property
    def name(self) -> str:
        if self.role == "unit" and self.unit_id:
            return self.unit_id
        return f"{self.role}:{self.key_id}" if self.key_id is not None else self.role


def check(action: str, status: str, actor: Actor, *, primary: str | None, assigned: set[str],
          whistled: set[str]) -> str | None:
    """Raise when the action is not allowed; return the state the ticket moves to (None: unchanged)."""
    rule = RULES.get(action)
    if rule is None:
        raise ValueError(f"unknown action {action!r}")
    if actor.role not in rule.roles and not (actor.role == "admin" and rule.unit_must_be is None):
        raise NotPermitted(f"the {actor.role} role may not {action}")
    if status not in rule.from_states:
        raise IllegalTransition(action, status)
    if actor.role == "unit" and rule.unit_must_be:
        allowed = {"assigned": assigned, "primary": {primary} if primary else set(), "whistled": whistled}[rule.unit_must_be]
        if actor.unit_id not in allowed:
            raise NotPermitted(f"unit {actor.unit_id} may not {action} this ticket")
    if action == "accept":
        return "accepted" if actor.unit_id == primary else status
    return rule.to_state
