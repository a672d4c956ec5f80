"""The ticket service: the store side of the loop. Intake classifies and dispatches an appeal and commits
the ticket with its events in one transaction; actions check the workflow, append an event and update
the derived state. Every change is an event row (who, what, when, payload).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from serving.domain import supervision, workflow
from serving.domain.dispatch import DispatchDecision, DispatchPolicy, decide_dispatch, deadlines
from serving.domain.actions import InvalidAction  # noqa: F401 - raised by act(); the edges catch it from here
from serving.domain.enums import EventKind, Mode, Role, Status
from serving.domain.workflow import Actor, IllegalTransition, NotPermitted  # noqa: F401 - as above
from serving.services.groups import assign_group, find_repeat
from serving.services.outbox import queue_reply
from serving.store.locks import transaction_lock
from serving.model.predictor import AppealInput, Classification, Predictor, RulesOnly, validate_appeal
from serving.store.models import MAX_ID, CorrectionRow, EventRow, IdempotencyRow, TicketRow, TicketUnitRow, UnitRow
from taxonomy import Taxonomy
from taxonomy.categories import Category


class TicketNotFound(LookupError):
    pass


INTAKE_ATTEMPTS = 3


def _is_conflict(exc: OperationalError) -> bool:
    """A deadlock or serialisation failure (PostgreSQL 40P01 / 40001): worth doing again."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in ("40P01", "40001")


class Conflict(Exception):
    """Another action changed the ticket first, or an idempotency key was reused for another appeal."""


def now() -> datetime:
    return datetime.now(timezone.utc)


class TicketService:
    def __init__(self, session: Session, taxonomy: Taxonomy, predictor: Predictor, review_threshold: float | None):
        self.session = session
        self.taxonomy = taxonomy
        self.predictor = predictor
        self.review_threshold = review_threshold

    # ---- intake -------------------------------------------------------------------------------------
    def intake(self, appeal: AppealInput, actor: Actor, idempotency_key: str | None = None,
               at: datetime | None = None, chosen: Category | None = None) -> tuple[TicketRow, bool]:
        """Create the ticket, or return the one an earlier request with the same key created. A key is the
        calling API key's own (two front-ends may use the same key text), and a retry must repeat the
        request: every field counts in its fingerprint. Raises ``AppealInputError`` for an appeal the
        rules refuse (``serving.model.appeals``)."""
        appeal = validate_appeal(appeal)
        request_hash = hashlib.sha256(json.dumps(appeal.fingerprint_fields(), ensure_ascii=False).encode()).hexdigest()
        if idempotency_key:
            idempotency_key = f"{actor.key_id}:{idempotency_key}" if actor.key_id is not None else idempotency_key
            existing = self.session.get(IdempotencyRow, idempotency_key)
            if existing is not None:
                if existing.request_hash != request_hash:
                    raise Conflict("this Idempotency-Key was used for a different appeal")
                return self.get(existing.ticket_id), False
        moment = at or now()
        received_at = appeal.received_at or moment
        reader = self.predictor if self.predictor is not None else RulesOnly(self.taxonomy)
        classification = reader.predict_one(appeal)
        if chosen is not None:  # the caller chose the category (an Open311 service): its owner is dispatched
            classification = classification.chosen(chosen.path, chosen.owner, chosen.company)
        if self.predictor is not None:
            decision = decide_dispatch(classification, received_at, self.policy())
        else:  # degraded, not down: a reviewer routes it, and dispatch resumes when a model is loaded
            decision = DispatchDecision(Mode.REVIEW, None, (), "no_model", ("no_model",), None, None)
        for attempt in range(INTAKE_ATTEMPTS):
            try:
                return self._store_intake(appeal, actor, classification, decision, received_at, moment,
                                          idempotency_key, request_hash)
            except (StaleDataError, OperationalError) as exc:
                # another transaction changed a ticket this one updates (a group member): do it again on
                # what is now committed; a busy database (not a conflict) goes up as 503
                self.session.rollback()
                if isinstance(exc, OperationalError) and not _is_conflict(exc) or attempt == INTAKE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _store_intake(self, appeal: AppealInput, actor: Actor, classification: Classification,
                      decision: DispatchDecision, received_at: datetime, moment: datetime,
                      idempotency_key: str | None, request_hash: str) -> tuple[TicketRow, bool]:
        if appeal.caller_phone:  # one caller saying the same twice at once: the second waits and is the repeat
            transaction_lock(self.session, f"caller:{appeal.caller_phone}")
        ticket = TicketRow(
            received_at=received_at, received_by=actor.name, channel=appeal.channel, title=appeal.title,
            text=appeal.text,
            address=appeal.address, caller_name=appeal.caller_name, caller_phone=appeal.caller_phone,
            status=Status.REVIEW if decision.mode == Mode.REVIEW else Status.DISPATCHED, mode=decision.mode,
            primary_unit_id=decision.primary_unit_id, respond_by=decision.respond_by, resolve_by=decision.resolve_by,
            classification={**classification.to_dict(), "model": self._model_record(),
                            "dispatch_mode": decision.mode, "dispatch_primary_unit_id": decision.primary_unit_id},
            events=[], units=[],  # a new ticket has none: known here, not asked of the database
        )
        _derive_columns(ticket, classification)
        self.session.add(ticket)
        self.session.flush()  # written first, so that SQLite's writers take turns before the look-ups below
        repeat_of = find_repeat(self.session, self.taxonomy.groups, appeal.caller_phone, appeal.title, appeal.text,
                                received_at, exclude_id=ticket.id)
        self._event(ticket, EventKind.RECEIVED, actor, at=received_at,
                    payload={"channel": appeal.channel, "text_chars": len(appeal.text)})
        self._event(ticket, EventKind.CLASSIFIED, Actor("system"), at=moment, payload=ticket.classification)
        if repeat_of is not None:
            self._close_as_repeat(ticket, repeat_of, moment)
        else:
            self._apply_dispatch(ticket, decision, Actor("system"), moment, kind=EventKind.DISPATCHED)
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

    def classify_waiting(self, at: datetime | None = None, limit: int = 10_000) -> list[int]:
        """Tickets received without a model and not yet routed by a reviewer: classify and dispatch them
        now that a model is loaded (after a reload, or on start). Returns their ids."""
        if self.predictor is None:
            return []
        moment = at or now()
        done = []
        waiting = self.list(status=Status.REVIEW, limit=limit, events=True)
        for ticket in waiting:
            last = next((e for e in reversed(ticket.events) if e.kind in SETS_DEADLINES), None)
            if last is None or last.kind != EventKind.QUEUED_FOR_REVIEW or \
                    last.payload.get("reasons") != ["no_model"] or ticket.category:
                continue
            appeal = AppealInput(text=ticket.text, title=ticket.title, address=ticket.address)
            classification = self.predictor.predict_one(appeal)
            decision = decide_dispatch(classification, ticket.received_at, self.policy())
            ticket.classification = {**classification.to_dict(), "model": self._model_record(),
                                     "dispatch_mode": decision.mode,
                                     "dispatch_primary_unit_id": decision.primary_unit_id}
            _derive_columns(ticket, classification)
            self._event(ticket, EventKind.CLASSIFIED, Actor("system"), at=moment, payload=ticket.classification)
            self._apply_dispatch(ticket, decision, Actor("system"), moment, kind=EventKind.DISPATCHED)
            if decision.mode != Mode.REVIEW:
                self._join_group(ticket, moment)
            done.append(ticket.id)
        self.session.commit()
        return done

    def _model_record(self) -> dict | None:
        if self.predictor is None:
            return None
        manifest = self.predictor.manifest
        return {"kind": manifest.kind, "created_at": manifest.data.get("created_at"),
                "fingerprint": manifest.data.get("training_data", {}).get("fingerprint")}

    def _close_as_repeat(self, ticket: TicketRow, original: TicketRow, at: datetime) -> None:
        """A repeat is not dispatched again: it points at the first ticket and closes."""
        ticket.duplicate_of, ticket.status, ticket.mode = original.id, Status.CLOSED, original.mode
        ticket.primary_unit_id, ticket.respond_by, ticket.resolve_by = (
            original.primary_unit_id, original.respond_by, original.resolve_by)
        self._event(ticket, EventKind.CLOSED, Actor("system"), at=at, payload={"reason": "repeat", "duplicate_of": original.id})
        self._event(original, "repeated", Actor("system"), at=at, payload={"ticket_id": ticket.id})

    def _join_group(self, ticket: TicketRow, at: datetime) -> None:
        rules = self.taxonomy.groups
        group = assign_group(self.session, rules, ticket)
        if group is None:
            return
        self.session.flush()
        members = self.session.execute(select(TicketRow).where(TicketRow.group_id == group.id)).scalars().all()
        grouped = set(self.session.scalars(select(EventRow.ticket_id).where(
            EventRow.ticket_id.in_([m.id for m in members]), EventRow.kind == "grouped")))
        for member in members:
            if member.id == ticket.id or member.id not in grouped:
                self._event(member, "grouped", Actor("system"), at=at, payload={"group_id": group.id,
                                                                                "size": group.size})
        level = rules.level_for(group.size)
        for member in members:
            if group.size >= rules.bonus_min_size:
                member.group_appeal = True
            if level is not None and member.urgency > level and member.status not in (Status.EVALUATED, Status.CLOSED):
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

    def _apply_dispatch(self, ticket: TicketRow, decision: DispatchDecision, actor: Actor, at: datetime,
                        kind: str, extra: dict | None = None) -> None:
        ticket.accepted_at = None
        for row in ticket.units:
            row.active = False
        if decision.mode == Mode.REVIEW:
            review_by = at + timedelta(hours=self.taxonomy.dispatch.review_hours)
            ticket.status, ticket.mode, ticket.primary_unit_id = Status.REVIEW, Mode.REVIEW, None
            ticket.respond_by, ticket.resolve_by = review_by, None
            self._event(ticket, EventKind.QUEUED_FOR_REVIEW, actor, at=at, payload={
                "reasons": list(decision.reasons), "rule": decision.rule_id, "review_by": _iso(review_by),
                **({"detail": decision.detail} if decision.detail else {})})
            return
        for role, unit_id in [("primary", decision.primary_unit_id)] + [("co", u) for u in decision.co_unit_ids]:
            ticket.units.append(TicketUnitRow(unit_id=unit_id, role=role, assigned_at=at,
                                              respond_by=decision.respond_by, active=True))
        ticket.status, ticket.mode = Status.DISPATCHED, decision.mode
        ticket.primary_unit_id, ticket.respond_by, ticket.resolve_by = (
            decision.primary_unit_id, decision.respond_by, decision.resolve_by)
        self._event(ticket, kind, actor, at=at, payload={
            "mode": decision.mode, "primary_unit_id": decision.primary_unit_id,
            "co_unit_ids": list(decision.co_unit_ids), "respond_by": _iso(decision.respond_by),
            "resolve_by": _iso(decision.resolve_by), "rule": decision.rule_id, **(extra or {})})

    # ---- reading ------------------------------------------------------------------------------------
    def get(self, ticket_id: int) -> TicketRow:
        if not 0 < ticket_id <= MAX_ID:
            raise TicketNotFound(ticket_id)
        ticket = self.session.execute(
            select(TicketRow).where(TicketRow.id == ticket_id)
            .options(selectinload(TicketRow.units), selectinload(TicketRow.events))
        ).scalar_one_or_none()
        if ticket is None:
            raise TicketNotFound(ticket_id)
        return ticket

    def lookup(self, ticket_id: int, phone: str) -> TicketRow | None:
        """The ticket, when ``phone`` is the one it was filed with (compared by digits); else None."""
        if not 0 < ticket_id <= MAX_ID:
            return None
        ticket = self.session.get(TicketRow, ticket_id)
        digits = "".join(c for c in phone if c.isdigit())
        filed = "".join(c for c in (ticket.caller_phone or "") if c.isdigit()) if ticket is not None else ""
        if not filed or not hmac.compare_digest(digits.encode(), filed.encode()):
            return None
        return ticket

    def visible_to(self, ticket: TicketRow, actor: Actor) -> bool:
        """Rules: a unit reads the tickets it has or had (``events_for`` limits what it sees of the
        latter); the intake role reads the tickets it received; the other roles read every ticket (what
        of it they see: ``serving.domain.privacy``)."""
        if actor.role == Role.UNIT:
            return any(u.unit_id == actor.unit_id for u in ticket.units)
        if actor.role == Role.INTAKE:
            return ticket.received_by == actor.name
        return True

    def events_for(self, ticket: TicketRow, actor: Actor) -> list[EventRow]:
        """Every event, except for a unit that no longer has the ticket: the events up to the one that
        ended its part (a return, a reassignment), so it never reads the next unit's work."""
        events = list(ticket.events)
        if actor.role != Role.UNIT or any(u.active and u.unit_id == actor.unit_id for u in ticket.units):
            return events
        members: set[str] = set()
        last = -1
        for index, event in enumerate(events):
            had = actor.unit_id in members
            if event.kind in (EventKind.DISPATCHED, EventKind.ASSIGNED):
                members = {event.payload.get("primary_unit_id"), *event.payload.get("co_unit_ids", [])}
            elif event.kind == EventKind.RETURNED:
                members = set()
            elif event.kind == EventKind.WHISTLED:
                members |= set(event.payload.get("unit_ids", []))
            if had or actor.unit_id in members:
                last = index
        return events[:last + 1]

    def list(self, *, status: str | None = None, unit_id: str | None = None, overdue: bool | None = None,
             limit: int = 100, offset: int = 0, at: datetime | None = None, events: bool = False,
             received_by: str | None = None) -> list[TicketRow]:
        query = select(TicketRow).options(selectinload(TicketRow.units)).order_by(TicketRow.id)
        if received_by:
            query = query.where(TicketRow.received_by == received_by)
        if events:
            query = query.options(selectinload(TicketRow.events))
        if status:
            query = query.where(TicketRow.status == status)
        if unit_id:
            query = query.where(TicketRow.id.in_(
                select(TicketUnitRow.ticket_id).where(TicketUnitRow.unit_id == unit_id, TicketUnitRow.active)))
        if overdue:
            moment = at or now()
            query = query.where(TicketRow.status.in_([Status.REVIEW, Status.DISPATCHED, Status.ACCEPTED]), (
                (TicketRow.status.in_([Status.REVIEW, Status.DISPATCHED]) & (TicketRow.respond_by < moment))
                | (TicketRow.resolve_by < moment)))
        return list(self.session.execute(query.limit(limit).offset(offset)).scalars())

    def review_queue(self, limit: int = 100, offset: int = 0) -> list[TicketRow]:
        """Tickets waiting for a reviewer, with their events (the queue shows every reason)."""
        return self.list(status=Status.REVIEW, limit=limit, offset=offset, events=True)

    # ---- actions ------------------------------------------------------------------------------------
    def act(self, ticket_id: int, action: str, body: dict, actor: Actor, at: datetime | None = None) -> TicketRow:
        """Load the ticket, let the workflow apply the action, persist the new state and its events."""
        ticket = self.get(ticket_id)
        if actor.role == "unit" and not self.visible_to(ticket, actor):
            raise NotPermitted(f"unit {actor.unit_id} may not act on ticket {ticket_id}")
        moment = at or now()
        new, events = workflow.apply(_state(ticket), action, body, actor, moment, self._context())
        try:  # the version check may fire at any flush, not only at the commit
            _store_state(ticket, new)
            for event in events:
                ticket.events.append(EventRow(kind=event.kind, actor=event.actor, unit_id=event.unit_id,
                                              at=event.at, payload=event.payload))
                if event.kind == EventKind.ASSIGNED and event.payload.get("corrected"):
                    self.session.flush()
                    self._record_correction(ticket, ticket.events[-1], moment)
                if event.kind == EventKind.REPLIED:  # 点对点反馈: the reply and the survey go to the citizen
                    queue_reply(self.session, ticket, event.payload.get("text") or "", moment)
            self.session.commit()
        except StaleDataError:
            self.session.rollback()
            raise Conflict(f"ticket {ticket_id} was changed by another action; reload and try again") from None
        return ticket

    def _context(self) -> workflow.Context:
        def unit(unit_id: str) -> workflow.UnitInfo | None:
            row = self.session.get(UnitRow, unit_id)
            return workflow.UnitInfo(row.kind, row.district_code, row.department_id) if row is not None else None

        rules = self.taxonomy.dispatch
        return workflow.Context(self.taxonomy.urgency, self.taxonomy.categories,
                                tuple(self.taxonomy.appeal_types.names), unit, rules.review_hours,
                                rules.report_in_hours)

    def _record_correction(self, ticket: TicketRow, event: EventRow, at: datetime) -> None:
        """A reviewer's correction of the router is training data (``jiesu corrections export``)."""
        payload = event.payload
        self.session.add(CorrectionRow(
            ticket_id=ticket.id, event_id=event.id, title=ticket.title, text=ticket.text, category=ticket.category,
            urgency=ticket.urgency, appeal_type=ticket.appeal_type, unit_id=payload["primary_unit_id"],
            district_id=ticket.district_id, department=payload.get("department"),
            company=payload.get("company") or "none", predicted=ticket.classification, created_at=at))

    # ---- supervision (督办) --------------------------------------------------------------------------
    def supervise(self, at: datetime | None = None) -> list[int]:
        """督办: raise every flag an open ticket is due (``serving.domain.supervision``); returns the ids of
        the tickets flagged."""
        moment = at or now()
        rules = self.taxonomy.dispatch.supervision
        flagged = []
        query = select(TicketRow).options(selectinload(TicketRow.events)).where(
            TicketRow.status.in_([Status.REVIEW, Status.DISPATCHED, Status.ACCEPTED]),
            (TicketRow.respond_by < moment) | (TicketRow.resolve_by < moment)).order_by(TicketRow.id)
        for ticket in self.session.execute(query).scalars():
            setting = next((e for e in reversed(ticket.events) if e.kind in SETS_DEADLINES), None)
            set_at = setting.at if setting is not None else ticket.received_at
            raised = {(e.payload.get("overdue"), e.payload.get("due"), e.payload.get("level", "unit"))
                      for e in ticket.events if e.kind == EventKind.SUPERVISED}
            due = supervision.deadlines_of(ticket.status, ticket.respond_by, ticket.resolve_by, set_at,
                                           ticket.received_at, setting is not None and setting.kind == "reopened")
            flags = supervision.due_flags(due, raised, moment, rules)
            for flag in flags:
                self._event(ticket, EventKind.SUPERVISED, Actor("system"), at=moment, unit_id=ticket.primary_unit_id,
                            payload={"overdue": flag.kind, "level": flag.level, "due": flag.due.isoformat(),
                                     "escalated_to": self._supervisor(ticket, flag.level)})
            if flags:
                flagged.append(ticket.id)
        self.session.commit()
        return flagged

    def _supervisor(self, ticket: TicketRow, level: str) -> str | None:
        """Who an escalation is raised to: the district of the ticket's place (or primary unit), or the city."""
        if level == "city":
            return "city"
        if level != "district":
            return None
        if ticket.district_id:
            return ticket.district_id
        unit = self.session.get(UnitRow, ticket.primary_unit_id) if ticket.primary_unit_id else None
        return f"district:{unit.district_code}" if unit is not None and unit.district_code else None

    # ---- helpers ------------------------------------------------------------------------------------
    def _event(self, ticket: TicketRow, kind: str, actor: Actor, *, at: datetime, unit_id: str | None = None,
               payload: dict | None = None) -> None:
        row = EventRow(kind=kind, actor=actor.name, unit_id=unit_id, at=at, payload=payload or {})
        if "events" in ticket.__dict__ or ticket.id is None:  # loaded (or new): keep the list in step
            ticket.events.append(row)
        else:  # another ticket's timeline (a group member): written without loading all of it
            row.ticket_id = ticket.id
            self.session.add(row)


SETS_DEADLINES = (EventKind.DISPATCHED, EventKind.ASSIGNED, EventKind.REOPENED, EventKind.QUEUED_FOR_REVIEW,
                  EventKind.RETURNED)
STATE_FIELDS = ("status", "mode", "received_at", "category", "urgency", "appeal_type", "primary_unit_id", "respond_by",
                "resolve_by", "accepted_at", "street_id", "district_id", "department_id", "company_id", "resolved",
                "satisfaction", "group_appeal", "long_standing", "unreasonable")


def _state(ticket: TicketRow) -> workflow.TicketState:
    units = tuple(workflow.UnitState(u.unit_id, u.role, u.assigned_at, u.respond_by, u.accepted_at, u.active)
                  for u in ticket.units)
    return workflow.TicketState(**{name: getattr(ticket, name) for name in STATE_FIELDS},
                                classification=ticket.classification or {}, units=units)


def _store_state(ticket: TicketRow, state: workflow.TicketState) -> None:
    """Write the workflow's state back to the row: changed fields, changed unit rows, new unit rows."""
    for name in STATE_FIELDS:
        value = getattr(state, name)
        value = str(value) if name in ("status", "mode") else value
        if getattr(ticket, name) != value:
            setattr(ticket, name, value)
    _set_category(ticket, state.category)
    for index, unit in enumerate(state.units):
        if index < len(ticket.units):
            row = ticket.units[index]
            for name in ("respond_by", "accepted_at", "active"):
                if getattr(row, name) != getattr(unit, name):
                    setattr(row, name, getattr(unit, name))
        else:
            ticket.units.append(TicketUnitRow(unit_id=unit.unit_id, role=str(unit.role), assigned_at=unit.assigned_at,
                                              respond_by=unit.respond_by, accepted_at=unit.accepted_at,
                                              active=unit.active))


def _derive_columns(ticket: TicketRow, classification: Classification) -> None:
    """The ticket's columns that queries and scores read, derived from the stored classification."""
    ticket.category_confidence = classification.category_confidence
    ticket.urgency, ticket.appeal_type = classification.urgency, classification.appeal_type
    ticket.district_id, ticket.street_id = classification.district_id, classification.street_id
    ticket.department_id, ticket.company_id = classification.department, classification.company
    _set_category(ticket, classification.category)


def _set_category(ticket: TicketRow, label: str) -> None:
    """The path's levels for slicing; an unclassified ticket (received without a model) has none."""
    parts = label.split("/") if label else []
    ticket.category = label
    ticket.category_l1, ticket.category_l2, ticket.category_l3 = (
        "/".join(parts[:n]) if len(parts) >= n else None for n in (1, 2, 3))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def status_counts(session: Session) -> dict[str, int]:
    """Tickets per status (the metrics' gauge)."""
    return dict(session.execute(select(TicketRow.status, func.count()).group_by(TicketRow.status)).all())
