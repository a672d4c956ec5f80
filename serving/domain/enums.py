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


STATUS_NAMES = {Status.REVIEW: "待审核", Status.DISPATCHED: "已派单", Status.ACCEPTED: "已签收", Status.REPLIED: "已答复",
                Status.EVALUATED: "已回访", Status.CLOSED: "已办结"}
EVENT_NAMES = {
    EventKind.RECEIVED: "受理", EventKind.CLASSIFIED: "分类", EventKind.DISPATCHED: "派单",
    EventKind.QUEUED_FOR_REVIEW: "转人工审核", EventKind.ACCEPTED: "签收", EventKind.RETURNED: "退单",
    EventKind.ASSIGNED: "改派", EventKind.WHISTLED: "吹哨", EventKind.REPORTED_IN: "报到", EventKind.NOTED: "备注",
    EventKind.REPLIED: "答复", EventKind.EVALUATED: "回访", EventKind.REOPENED: "重办", EventKind.CLOSED: "办结",
    EventKind.MARKED_UNREASONABLE: "标记不合理诉求", EventKind.SUPERVISED: "督办", EventKind.GROUPED: "并入群体性诉求",
    EventKind.URGENCY_RAISED: "提升紧急程度", EventKind.REPEATED: "重复来电",
}
