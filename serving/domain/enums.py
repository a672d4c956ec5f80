"""The names the ticket domain uses, defined once: ticket statuses, dispatch modes, roles, unit roles on a
ticket, event kinds and callback satisfaction. Each is a ``StrEnum``, so a value compares equal to its
string and is stored as one."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    REVIEW = "review"  # a person must route it
    DISPATCHED = "dispatched"  # sent to units, not yet accepted by the primary
    ACCEPTED = "accepted"  # 签收 by the primary unit
    REPLIED = "replied"  # 答复
    EVALUATED = "evaluated"  # 回访
    CLOSED = "closed"


OPEN_STATUSES = frozenset(Status) - {Status.CLOSED}


class Mode(StrEnum):
    DIRECT = "direct"
    JOINT = "joint"  # 联合双派
    REVIEW = "review"


class Role(StrEnum):
    INTAKE = "intake"
    UNIT = "unit"
    REVIEWER = "reviewer"
    CALLBACK = "callback"
    ANALYST = "analyst"
    ADMIN = "admin"


class UnitRole(StrEnum):
    PRIMARY = "primary"
    CO = "co"
    WHISTLED = "whistled"


class EventKind(StrEnum):
    RECEIVED = "received"
    CLASSIFIED = "classified"
    DISPATCHED = "dispatched"
    QUEUED_FOR_REVIEW = "queued_for_review"
    ACCEPTED = "accepted"
    RETURNED = "returned"
    ASSIGNED = "assigned"
    WHISTLED = "whistled"
    REPORTED_IN = "reported_in"
    NOTED = "noted"
    REPLIED = "replied"
    EVALUATED = "evaluated"
    REOPENED = "reopened"
    CLOSED = "closed"
    MARKED_UNREASONABLE = "marked_unreasonable"
    SUPERVISED = "supervised"
    GROUPED = "grouped"
    URGENCY_RAISED = "urgency_raised"
    REPEATED = "repeated"


class Satisfaction(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"
