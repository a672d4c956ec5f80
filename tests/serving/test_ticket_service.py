"""The ticket service without HTTP: load → apply → persist, intake's one appeal shape, idempotency,
supervision and the review queue, on a fresh SQLite store with the sample model."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from serving.domain.enums import EventKind, Status
from serving.domain.workflow import Actor, IllegalTransition, NotPermitted
from serving.model.appeals import AppealInput, AppealInputError
from serving.model.predictor import Predictor
from serving.services.tickets import Conflict, TicketNotFound, TicketService, status_counts
from serving.services.units import sync_units
from serving.store.db import make_engine, migrate, session_factory

CST = timezone(timedelta(hours=8))
AT = datetime(2026, 11, 2, 9, 0, tzinfo=CST)
GAS = AppealInput(title="燃气泄漏", text="朝阳区建外街道永安里小区3号楼楼道里燃气泄漏，味道很大，请马上派人来！",
                  channel="phone", received_at=AT, caller_phone="13800000001")
INTAKE = Actor("intake", key_id=1)


@pytest.fixture(scope="module")
def predictor(sample_model, taxonomy):
    return Predictor(sample_model, taxonomy)


@pytest.fixture()
def service(tmp_path, taxonomy, predictor):
    engine = make_engine(f"sqlite:///{tmp_path / 'jiesu.db'}")
    migrate(engine)
    sessions = session_factory(engine)
    with sessions() as session:
        sync_units(session, taxonomy)
        session.commit()
        yield TicketService(session, taxonomy, predictor, review_threshold=0.0)
    engine.dispose()


def test_intake_stores_the_classification_once_and_derives_the_columns_from_it(service):
    ticket, created = service.intake(GAS, INTAKE, at=AT)
    assert created and ticket.status == Status.DISPATCHED
    c = ticket.classification
    assert (ticket.category, ticket.urgency, ticket.appeal_type) == (c["category"], c["urgency"], c["appeal_type"])
    assert (ticket.department_id, ticket.street_id, ticket.district_id) == (
        c["department"], c["street_id"], c["district_id"])
    assert ticket.category_l1 == c["category"].split("/")[0]
    assert c["model"]["kind"] == "linear" and c["dispatch_primary_unit_id"] == ticket.primary_unit_id
    kinds = [e.kind for e in ticket.events]
    assert kinds[:3] == [EventKind.RECEIVED, EventKind.CLASSIFIED, EventKind.DISPATCHED]
    assert ticket.events[1].payload == c  # the classified event carries the same record
    assert ticket.caller_phone == "13800000001" and ticket.channel == "phone" and ticket.received_at == AT


@pytest.mark.parametrize("appeal, field, reason", [
    (AppealInput(text="   \u3000\n"), "text", "is empty"),
    (AppealInput(text="楼下\x00噪音"), "text", "NUL"),
    (AppealInput(text="楼下噪音", title="\ud800"), "title", "lone surrogates"),
    (AppealInput(text="楼下噪音", caller_name="张\ud800"), "caller_name", "lone surrogates"),
    (AppealInput(text="长" * 20_001), "text", "limit is 20000"),
])
def test_intake_refuses_a_bad_appeal_naming_the_field_and_stores_nothing(service, appeal, field, reason):
    with pytest.raises(AppealInputError) as err:
        service.intake(appeal, INTAKE, at=AT)
    assert err.value.field == field and reason in err.value.reason
    assert status_counts(service.session) == {}


def test_a_retry_with_the_same_key_gets_the_first_ticket_and_a_changed_retry_is_a_conflict(service):
    first, created = service.intake(GAS, INTAKE, "call-1", at=AT)
    again, created_again = service.intake(GAS, INTAKE, "call-1", at=AT + timedelta(seconds=5))
    assert created and not created_again and again.id == first.id
    moved = AppealInput(**{**GAS.__dict__, "received_at": AT + timedelta(minutes=1)})
    with pytest.raises(Conflict):
        service.intake(moved, INTAKE, "call-1", at=AT)
    other_key, created_other = service.intake(GAS, Actor("intake", key_id=2), "call-1", at=AT)
    assert created_other and other_key.id != first.id  # the key text is the calling key's own


def test_an_action_is_loaded_applied_and_persisted_with_its_events(service):
    ticket, _ = service.intake(GAS, INTAKE, at=AT)
    primary = ticket.primary_unit_id
    accepted = service.act(ticket.id, "accept", {}, Actor("unit", unit_id=primary), at=AT + timedelta(minutes=20))
    assert accepted.status == Status.ACCEPTED and accepted.accepted_at is not None
    assert accepted.events[-1].kind == EventKind.ACCEPTED and accepted.events[-1].actor == primary
    reloaded = service.get(ticket.id)
    assert reloaded.status == Status.ACCEPTED and len(reloaded.events) == len(accepted.events)
    with pytest.raises(IllegalTransition):
        service.act(ticket.id, "accept", {}, Actor("unit", unit_id=primary), at=AT + timedelta(minutes=21))


def test_a_unit_may_not_act_on_another_units_ticket_and_a_missing_ticket_is_named(service):
    ticket, _ = service.intake(GAS, INTAKE, at=AT)
    with pytest.raises(NotPermitted):
        service.act(ticket.id, "accept", {}, Actor("unit", unit_id="street:110105099"), at=AT)
    with pytest.raises(TicketNotFound):
        service.get(10**9)


def test_supervision_flags_an_overdue_ticket_once_per_deadline(service):
    ticket, _ = service.intake(GAS, INTAKE, at=AT)
    late = ticket.respond_by + timedelta(minutes=1)
    assert service.supervise(at=late) == [ticket.id]
    assert service.supervise(at=late + timedelta(minutes=1)) == []  # already raised for this deadline
    supervised = [e for e in service.get(ticket.id).events if e.kind == EventKind.SUPERVISED]
    assert len(supervised) == 1 and supervised[0].payload["overdue"] == "respond"


def test_the_review_queue_holds_tickets_below_the_threshold_with_their_reasons(tmp_path, taxonomy, predictor):
    engine = make_engine(f"sqlite:///{tmp_path / 'review.db'}")
    migrate(engine)
    with session_factory(engine)() as session:
        sync_units(session, taxonomy)
        session.commit()
        strict = TicketService(session, taxonomy, predictor, review_threshold=0.999)
        ticket, _ = strict.intake(AppealInput(text="有个事情想反映一下，麻烦处理。"), INTAKE, at=AT)
        assert ticket.status == Status.REVIEW and ticket.primary_unit_id is None
        queue = strict.review_queue()
        assert [t.id for t in queue] == [ticket.id]
        queued = [e for e in queue[0].events if e.kind == EventKind.QUEUED_FOR_REVIEW]
        assert queued and queued[0].payload["reasons"]
    engine.dispose()
