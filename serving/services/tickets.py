"""The ticket service: the store side of the loop. Intake classifies and dispatches an appeal and commits
the ticket with its events in one transaction; actions check the workflow, append an event and update
the derived state. Every change is an event row (who, what, when, payload).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from serving.domain import workflow
from serving.domain.dispatch import DispatchDecision, DispatchPolicy, decide_dispatch, deadlines
from serving.domain.workflow import Actor, IllegalTransition, NotPermitted
from serving.services.groups import assign_group, find_repeat
from serving.model.predictor import AppealInput, Prediction, Predictor
from serving.store.models import CorrectionRow, EventRow, IdempotencyRow, TicketRow, TicketUnitRow, UnitRow
from taxonomy import Taxonomy


class TicketNotFound(LookupError):
    pass


class Conflict(Exception):
    """Another action changed the ticket first, or an idempotency key was reused for another appeal."""


class InvalidAction(ValueError):
    """The body of an action is wrong: names the field."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Intake:
    text: str
    title: str = ""
    channel: str = "other"
    received_at: datetime | None = None
    address: str | None = None
    caller_name: str | None = None
    caller_phone: str | None = None


class TicketService:
    def __init__(self, session: Session, taxonomy: Taxonomy, predictor: Predictor, review_threshold: float | None):
        self.session = session
        self.taxonomy = taxonomy
        self.predictor = predictor
        self.review_threshold = review_threshold

    # ---- intake -------------------------------------------------------------------------------------
    def intake(self, appeal: Intake, actor: Actor, idempotency_key: str | None = None,
               at: datetime | None = None) -> tuple[TicketRow, bool]:
        """Create the ticket, or return the one an earlier request with the same key created."""
        request_hash = hashlib.sha256(json.dumps(
            [appeal.text, appeal.title, appeal.channel, appeal.address, appeal.caller_phone],
            ensure_ascii=False).encode()).hexdigest()
        if idempotency_key:
            existing = self.session.get(IdempotencyRow, idempotency_key)
            if existing is not None:
                if existing.request_hash != request_hash:
                    raise Conflict("this Idempotency-Key was used for a different appeal")
                return self.get(existing.ticket_id), False
        moment = at or now()
        received_at = appeal.received_at or moment
        prediction = self.predictor.predict_one(AppealInput(text=appeal.text, title=appeal.title,
                                                            address=appeal.address))
        rules = self.taxonomy.groups
        repeat_of = find_repeat(self.session, rules, appeal.caller_phone, appeal.title or "", appeal.text, received_at)
        decision = self._dispatch(prediction, received_at)
        ticket = TicketRow(
            received_at=received_at, channel=appeal.channel, title=appeal.title or "", text=appeal.text,
            address=appeal.address, caller_name=appeal.caller_name, caller_phone=appeal.caller_phone,
            status="review" if decision.mode == "review" else "dispatched", mode=decision.mode,
            category=prediction.category, category_confidence=prediction.category_confidence,
            urgency=prediction.urgency, appeal_type=prediction.appeal_type, district_id=prediction.district_id,
            street_id=prediction.street_id, department_id=prediction.department, company_id=prediction.company,
            primary_unit_id=decision.primary_unit_id,
            respond_by=decision.respond_by, resolve_by=decision.resolve_by,
            classification={**_classification(prediction, self.predictor),
                            "dispatch_mode": decision.mode, "dispatch_primary_unit_id": decision.primary_unit_id},
        )
        _set_category(ticket, prediction.category)
        self.session.add(ticket)
        self.session.flush()
        self._event(ticket, "received", actor, at=received_at, payload={"channel": appeal.channel,
                                                                        "text_chars": len(appeal.text)})
        self._event(ticket, "classified", Actor("system"), at=moment, payload=ticket.classification)
        if repeat_of is not None:
            self._close_as_repeat(ticket, repeat_of, moment)
        else:
            self._apply_dispatch(ticket, decision, Actor("system"), moment, kind="dispatched")
            self._join_group(ticket, moment)
        if idempotency_key:
            self.session.add(IdempotencyRow(key=idempotency_key, ticket_id=ticket.id, request_hash=request_hash,
                                            created_at=moment))
        try:
            self.session.commit()
        except IntegrityError:  # the same key raced in from a concurrent request: theirs won
            self.session.rollback()
            existing = self.session.get(IdempotencyRow, idempotency_key) if idempotency_key else None
            if existing is None:
                raise
            return self.get(existing.ticket_id), False
        return ticket, True

    def _close_as_repeat(self, ticket: TicketRow, original: TicketRow, at: datetime) -> None:
        """A repeat is not dispatched again: it points at the first ticket and closes."""
        ticket.duplicate_of, ticket.status, ticket.mode = original.id, "closed", original.mode
        ticket.primary_unit_id, ticket.respond_by, ticket.resolve_by = (
            original.primary_unit_id, original.respond_by, original.resolve_by)
        self._event(ticket, "closed", Actor("system"), at=at, payload={"reason": "repeat", "duplicate_of": original.id})
        self._event(original, "repeated", Actor("system"), at=at, payload={"ticket_id": ticket.id})

    def _join_group(self, ticket: TicketRow, at: datetime) -> None:
        rules = self.taxonomy.groups
        group = assign_group(self.session, rules, ticket)
        if group is None:
            return
        self.session.flush()
        members = self.session.execute(select(TicketRow).where(TicketRow.group_id == group.id)).scalars().all()
        for member in members:
            if member.id == ticket.id or not any(e.kind == "grouped" for e in member.events):
                self._event(member, "grouped", Actor("system"), at=at, payload={"group_id": group.id,
                                                                                "size": group.size})
        level = rules.level_for(group.size)
        for member in members:
            if group.size >= rules.bonus_min_size:
                member.group_appeal = True
            if level is not None and member.urgency > level and member.status not in ("evaluated", "closed"):
                before = member.urgency
                member.urgency = level
                _, member.resolve_by = deadlines(level, member.received_at, self.taxonomy.urgency)
                self._event(member, "urgency_raised", Actor("system"), at=at, payload={
                    "from": before, "to": level, "group_id": group.id, "group_size": group.size,
                    "resolve_by": _iso(member.resolve_by)})

    def policy(self) -> DispatchPolicy:
        """The review threshold: settings, else the one the bundle chose on validation, else dispatch.yaml's."""
        threshold = self.review_threshold
        if threshold is None and self.predictor is not None:
            threshold = self.predictor.decisions.dispatch
        return DispatchPolicy(self.taxonomy, self.taxonomy.dispatch, threshold)

    def _dispatch(self, prediction: Prediction, received_at: datetime) -> DispatchDecision:
        return decide_dispatch(prediction, received_at, self.policy())

    def _apply_dispatch(self, ticket: TicketRow, decision: DispatchDecision, actor: Actor, at: datetime,
                        kind: str, extra: dict | None = None) -> None:
        ticket.accepted_at = None
        for row in ticket.units:
            row.active = False
        if decision.mode == "review":
            ticket.status, ticket.mode, ticket.primary_unit_id = "review", "review", None
            self._event(ticket, "queued_for_review", actor, at=at, payload={
                "reasons": list(decision.reasons), "rule": decision.rule_id,
                **({"detail": decision.detail} if decision.detail else {})})
            return
        for role, unit_id in [("primary", decision.primary_unit_id)] + [("co", u) for u in decision.co_unit_ids]:
            ticket.units.append(TicketUnitRow(unit_id=unit_id, role=role, assigned_at=at,
                                              respond_by=decision.respond_by, active=True))
        ticket.status, ticket.mode = "dispatched", decision.mode
        ticket.primary_unit_id, ticket.respond_by, ticket.resolve_by = (
            decision.primary_unit_id, decision.respond_by, decision.resolve_by)
        self._event(ticket, kind, actor, at=at, payload={
            "mode": decision.mode, "primary_unit_id": decision.primary_unit_id,
            "co_unit_ids": list(decision.co_unit_ids), "respond_by": _iso(decision.respond_by),
            "resolve_by": _iso(decision.resolve_by), "rule": decision.rule_id, **(extra or {})})

    # ---- reading ------------------------------------------------------------------------------------
    def get(self, ticket_id: int) -> TicketRow:
        ticket = self.session.execute(
            select(TicketRow).where(TicketRow.id == ticket_id)
            .options(selectinload(TicketRow.units), selectinload(TicketRow.events))
        ).scalar_one_or_none()
        if ticket is None:
            raise TicketNotFound(ticket_id)
        return ticket

    def visible_to(self, ticket: TicketRow, actor: Actor) -> bool:
        if actor.role != "unit":
            return True
        return any(u.unit_id == actor.unit_id for u in ticket.units)

    def list(self, *, status: str | None = None, unit_id: str | None = None, overdue: bool | None = None,
             limit: int = 100, offset: int = 0, at: datetime | None = None) -> list[TicketRow]:
        query = select(TicketRow).options(selectinload(TicketRow.units)).order_by(TicketRow.id)
        if status:
            query = query.where(TicketRow.status == status)
        if unit_id:
            query = query.where(TicketRow.id.in_(
                select(TicketUnitRow.ticket_id).where(TicketUnitRow.unit_id == unit_id, TicketUnitRow.active)))
        if overdue:
            moment = at or now()
            query = query.where(TicketRow.status.in_(["dispatched", "accepted"]), (
                ((TicketRow.status == "dispatched") & (TicketRow.respond_by < moment))
                | (TicketRow.resolve_by < moment)))
        return list(self.session.execute(query.limit(limit).offset(offset)).scalars())

    def review_queue(self, limit: int = 100, offset: int = 0) -> list[TicketRow]:
        return self.list(status="review", limit=limit, offset=offset)

    # ---- actions ------------------------------------------------------------------------------------
    def act(self, ticket_id: int, action: str, body: dict, actor: Actor, at: datetime | None = None) -> TicketRow:
        ticket = self.get(ticket_id)
        if actor.role == "unit" and not self.visible_to(ticket, actor):
            raise NotPermitted(f"unit {actor.unit_id} may not act on ticket {ticket_id}")
        active = [u for u in ticket.units if u.active]
        assigned = {u.unit_id for u in active if u.role in ("primary", "co")}
        whistled = {u.unit_id for u in active if u.role == "whistled"}
        new_state = workflow.check(action, ticket.status, actor, primary=ticket.primary_unit_id,
                                   assigned=assigned, whistled=whistled)
        moment = at or now()
        handler = getattr(self, "_" + action.replace("-", "_"))
        handler(ticket, body, actor, moment, new_state)
        try:
            self.session.commit()
        except StaleDataError:
            self.session.rollback()
            raise Conflict(f"ticket {ticket_id} was changed by another action; reload and try again") from None
        return ticket

    def _accept(self, ticket, body, actor, at, new_state):
        if actor.unit_id == ticket.primary_unit_id and ticket.accepted_at is None:
            ticket.accepted_at = at
        for row in ticket.units:
            if row.active and row.unit_id == actor.unit_id and row.role in ("primary", "co") and row.accepted_at is None:
                row.accepted_at = at
        ticket.status = new_state
        self._event(ticket, "accepted", actor, at=at, unit_id=actor.unit_id)

    def _return(self, ticket, body, actor, at, new_state):
        reason = _text(body, "reason")
        for row in ticket.units:
            row.active = False
        ticket.status, ticket.mode, ticket.primary_unit_id, ticket.accepted_at = "review", "review", None, None
        self._event(ticket, "returned", actor, at=at, unit_id=actor.unit_id, payload={"reason": reason})

    def _assign(self, ticket, body, actor, at, new_state):
        primary = body.get("primary_unit_id")
        if not isinstance(primary, str) or not self._unit_exists(primary):
            raise InvalidAction("primary_unit_id", f"unknown unit {primary!r}")
        co = body.get("co_unit_ids") or []
        if not isinstance(co, list) or any(not isinstance(u, str) for u in co):
            raise InvalidAction("co_unit_ids", "must be a list of unit ids")
        for unit_id in co:
            if not self._unit_exists(unit_id):
                raise InvalidAction("co_unit_ids", f"unknown unit {unit_id!r}")
        co = [u for u in dict.fromkeys(co) if u != primary]
        before = {"category": ticket.category, "urgency": ticket.urgency, "appeal_type": ticket.appeal_type,
                  "department": ticket.department_id, "company": ticket.company_id}
        primary_unit = self.session.get(UnitRow, primary)
        if primary_unit.kind == "street":  # the reviewer's street is where it happens: the place follows
            ticket.street_id, ticket.district_id = primary, f"district:{primary_unit.district_code}"
        category = body.get("category")
        if category is not None:
            node = self.taxonomy.categories.find(category) if isinstance(category, str) else None
            if node is None:
                raise InvalidAction("category", f"{category!r} is not in the category tree")
            _set_category(ticket, node.label)
        urgency = body.get("urgency")
        if urgency is not None:
            if urgency not in (1, 2, 3, 4) or isinstance(urgency, bool):
                raise InvalidAction("urgency", "must be 1, 2, 3 or 4")
            ticket.urgency = urgency
        appeal_type = body.get("appeal_type")
        if appeal_type is not None:
            if appeal_type not in self.taxonomy.appeal_types.names:
                raise InvalidAction("appeal_type", f"must be one of {', '.join(self.taxonomy.appeal_types.names)}")
            ticket.appeal_type = appeal_type
        for flag in ("group_appeal", "long_standing"):
            if flag in body and body[flag] is not None:
                if not isinstance(body[flag], bool):
                    raise InvalidAction(flag, "must be true or false")
                setattr(ticket, flag, body[flag])
        respond_by, _ = deadlines(ticket.urgency, at, self.taxonomy.urgency)
        _, resolve_by = deadlines(ticket.urgency, ticket.received_at, self.taxonomy.urgency)
        decision = DispatchDecision(mode="joint" if co else "direct", primary_unit_id=primary,
                                    co_unit_ids=tuple(co), rule_id="reviewer", reasons=(),
                                    respond_by=respond_by, resolve_by=resolve_by)
        department, company = self._owners(primary, co)
        if department is not None:
            ticket.department_id = department
        ticket.company_id = None if company == "none" else company
        predicted = ticket.classification
        corrected = (ticket.category != predicted.get("category") or ticket.urgency != predicted.get("urgency")
                     or ticket.appeal_type != predicted.get("appeal_type")
                     or primary != predicted.get("dispatch_primary_unit_id")
                     or (department is not None and department != predicted.get("department"))
                     or ticket.company_id != predicted.get("company"))
        self._apply_dispatch(ticket, decision, actor, at, kind="assigned", extra={
            "category": ticket.category, "urgency": ticket.urgency, "appeal_type": ticket.appeal_type,
            "department": ticket.department_id, "company": ticket.company_id, "corrected": corrected,
            "before": before})
        if corrected:
            self.session.flush()
            self.session.add(CorrectionRow(
                ticket_id=ticket.id, event_id=ticket.events[-1].id, title=ticket.title, text=ticket.text,
                category=ticket.category, urgency=ticket.urgency, appeal_type=ticket.appeal_type, unit_id=primary,
                district_id=ticket.district_id, department=ticket.department_id, company=company,
                predicted=predicted, created_at=at))

    def _whistle(self, ticket, body, actor, at, new_state):
        unit_ids = body.get("unit_ids")
        if not isinstance(unit_ids, list) or not unit_ids or any(not isinstance(u, str) for u in unit_ids):
            raise InvalidAction("unit_ids", "name at least one unit")
        for unit_id in unit_ids:
            if not self._unit_exists(unit_id):
                raise InvalidAction("unit_ids", f"unknown unit {unit_id!r}")
        note = body.get("note") or ""
        for unit_id in dict.fromkeys(unit_ids):
            ticket.units.append(TicketUnitRow(unit_id=unit_id, role="whistled", assigned_at=at, active=True))
        self._event(ticket, "whistled", actor, at=at, unit_id=actor.unit_id,
                    payload={"unit_ids": list(dict.fromkeys(unit_ids)), "note": note})

    def _report_in(self, ticket, body, actor, at, new_state):
        for row in ticket.units:
            if row.active and row.role == "whistled" and row.unit_id == actor.unit_id and row.accepted_at is None:
                row.accepted_at = at
        self._event(ticket, "reported_in", actor, at=at, unit_id=actor.unit_id)

    def _note(self, ticket, body, actor, at, new_state):
        self._event(ticket, "noted", actor, at=at, unit_id=actor.unit_id, payload={"text": _text(body, "text")})

    def _reply(self, ticket, body, actor, at, new_state):
        text = _text(body, "text")
        solved = body.get("solved")
        if not isinstance(solved, bool):
            raise InvalidAction("solved", "must be true or false")
        ticket.status = new_state
        self._event(ticket, "replied", actor, at=at, unit_id=actor.unit_id, payload={"text": text, "solved": solved})

    def _evaluate(self, ticket, body, actor, at, new_state):
        resolved, satisfaction = body.get("resolved"), body.get("satisfaction")
        if not isinstance(resolved, bool):
            raise InvalidAction("resolved", "must be true or false")
        if satisfaction not in ("satisfied", "basically_satisfied", "dissatisfied"):
            raise InvalidAction("satisfaction", "must be satisfied, basically_satisfied or dissatisfied")
        ticket.status, ticket.resolved, ticket.satisfaction = new_state, resolved, satisfaction
        self._event(ticket, "evaluated", actor, at=at, payload={"resolved": resolved, "satisfaction": satisfaction})

    def _reopen(self, ticket, body, actor, at, new_state):
        reason = body.get("reason") or ""
        respond_by, _ = deadlines(ticket.urgency, at, self.taxonomy.urgency)
        for row in ticket.units:
            if row.active and row.role in ("primary", "co"):
                row.accepted_at, row.respond_by = None, respond_by
        ticket.status, ticket.respond_by, ticket.accepted_at = new_state, respond_by, None
        self._event(ticket, "reopened", actor, at=at, payload={"reason": reason, "respond_by": _iso(respond_by)})

    def _close(self, ticket, body, actor, at, new_state):
        ticket.status = new_state
        self._event(ticket, "closed", actor, at=at)

    def _mark_unreasonable(self, ticket, body, actor, at, new_state):
        ticket.unreasonable = True
        self._event(ticket, "marked_unreasonable", actor, at=at, payload={"reason": _text(body, "reason")})

    # ---- supervision (督办) --------------------------------------------------------------------------
    def supervise(self, at: datetime | None = None) -> list[int]:
        """Flag each overdue open ticket once per deadline it missed; returns the flagged ticket ids."""
        moment = at or now()
        flagged = []
        for ticket in self.list(overdue=True, limit=100_000, at=moment):
            missed = "respond" if ticket.status == "dispatched" and ticket.respond_by and ticket.respond_by < moment \
                else "resolve"
            already = self.session.scalar(select(func.count()).select_from(EventRow).where(
                EventRow.ticket_id == ticket.id, EventRow.kind == "supervised",
                EventRow.payload["overdue"].as_string() == missed, EventRow.at >= ticket.respond_by
                if missed == "respond" else EventRow.at >= ticket.resolve_by))
            if not already:
                self._event(ticket, "supervised", Actor("system"), at=moment, unit_id=ticket.primary_unit_id,
                            payload={"overdue": missed})
                flagged.append(ticket.id)
        self.session.commit()
        return flagged

    def _owners(self, primary: str, co: list[str]) -> tuple[str | None, str]:
        """The department and company a reviewer's dispatch names: the first department unit among the
        primary and co-units (its sector id), and the first company (``none`` where there is none)."""
        department, company = None, "none"
        for unit_id in [primary, *co]:
            row = self.session.get(UnitRow, unit_id)
            if row is None:
                continue
            if row.kind == "department" and department is None:
                department = row.department_id
            if row.kind == "company" and company == "none":
                company = unit_id.split(":", 1)[1]
        return department, company

    # ---- helpers ------------------------------------------------------------------------------------
    def _unit_exists(self, unit_id: str) -> bool:
        return self.session.get(UnitRow, unit_id) is not None

    def _event(self, ticket: TicketRow, kind: str, actor: Actor, *, at: datetime, unit_id: str | None = None,
               payload: dict | None = None) -> None:
        ticket.events.append(EventRow(kind=kind, actor=actor.name, unit_id=unit_id, at=at, payload=payload or {}))


def _set_category(ticket: TicketRow, label: str) -> None:
    parts = label.split("/")
    ticket.category = label
    ticket.category_l1, ticket.category_l2, ticket.category_l3 = (
        "/".join(parts[:n]) if len(parts) >= n else None for n in (1, 2, 3))


def _text(body: dict, field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InvalidAction(field, "is required and must be non-empty text")
    return value.strip()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _classification(prediction: Prediction, predictor: Predictor) -> dict:
    return {
        "category": prediction.category, "category_confidence": round(prediction.category_confidence, 6),
        "category_top3": [[label, round(p, 6)] for label, p in prediction.category_top3],
        "category_path": list(prediction.category_path),
        "category_confidences": [round(c, 6) for c in prediction.category_confidences],
        "category_guess": list(prediction.category_guess),
        "category_guess_confidences": [round(c, 6) for c in prediction.category_guess_confidences],
        "category_failed_level": prediction.category_failed_level,
        "department": prediction.department, "department_confidence": round(prediction.department_confidence, 6),
        "company": prediction.company, "company_confidence": round(prediction.company_confidence, 6),
        "urgency": prediction.urgency, "urgency_reason": prediction.urgency_reason,
        "appeal_type": prediction.appeal_type, "appeal_type_reason": prediction.appeal_type_reason,
        "district_id": prediction.district_id, "district": prediction.district,
        "street_id": prediction.street_id, "street": prediction.street, "warnings": prediction.warnings,
        "model": {"kind": predictor.manifest.kind, "created_at": predictor.manifest.data.get("created_at"),
                  "fingerprint": predictor.manifest.data.get("training_data", {}).get("fingerprint")},
    }
