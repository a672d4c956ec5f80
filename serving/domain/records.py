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
from typing import Any

from serving.domain.enums import EventKind, Mode as DispatchMode, Satisfaction, Status as TicketStatus  # noqa: F401 - names the records use


@dataclass
class Classification:
    """What the router decided about one appeal: the category path backed off to the levels it is sure of
    (and its best guess below them), urgency and type with the reason for each, the place, and the units
    that own the problem (the department and, for a utility's own service, the company)."""

    id: str | None
    category: str  # the backed-off path as a label, ``城乡建设/供暖``
    category_confidence: float  # the joint confidence of that path
    category_top3: list[tuple[str, float]]  # the three most probable first-level categories
    urgency: int
    urgency_reason: str
    urgency_rule: str
    appeal_type: str
    appeal_type_reason: str
    district: str | None
    street: str | None
    district_id: str | None = None
    street_id: str | None = None
    place_evidence: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    category_path: list[str] = field(default_factory=list)
    category_confidences: list[float] = field(default_factory=list)
    category_guess: list[str] = field(default_factory=list)  # the most probable path, as deep as the model reads
    category_guess_confidences: list[float] = field(default_factory=list)
    category_failed_level: int | None = None  # the first level whose confidence fell below its threshold
    department: str | None = None  # a department id of the profile
    department_confidence: float = 0.0
    company: str | None = None  # a company id, for a utility's own service
    company_confidence: float = 0.0

    def chosen(self, path: tuple[str, ...], department: str | None, company: str | None) -> "Classification":
        """The same reading with the category the caller chose (an Open311 ``service_code``): the path,
        its owner and company are theirs, at full confidence; urgency, type and place stay the router's."""
        from dataclasses import replace

        return replace(self, category="/".join(path), category_path=list(path), category_guess=list(path),
                       category_confidences=[1.0] * len(path), category_guess_confidences=[1.0] * len(path),
                       category_confidence=1.0, category_failed_level=None, department=department,
                       department_confidence=1.0 if department else 0.0, company=company,
                       company_confidence=1.0 if company else 0.0,
                       warnings=[*self.warnings, "category chosen by the caller"])

    @property
    def category_detail(self) -> str | None:
        """The best guess, where it goes deeper than the backed-off path."""
        return "/".join(self.category_guess) if len(self.category_guess) > len(self.category_path) else None

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        data["category_top3"] = [[label, round(p, 6)] for label, p in self.category_top3]
        for key in ("category_confidence", "department_confidence", "company_confidence"):
            data[key] = round(data[key], 6)
        for key in ("category_confidences", "category_guess_confidences"):
            data[key] = [round(x, 6) for x in data[key]]
        data["category_detail"] = self.category_detail
        return data


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
