"""群体性诉求 and repeats at the store, without HTTP: who joins a group, who stays alone, what a repeat is."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from serving.domain.enums import Status
from serving.domain.workflow import Actor
from serving.model.appeals import AppealInput
from serving.model.predictor import Predictor
from serving.services.groups import find_repeat, text_key
from serving.services.tickets import TicketService
from serving.services.units import sync_units
from serving.store.db import make_engine, migrate, session_factory

CST = timezone(timedelta(hours=8))
AT = datetime(2026, 8, 12, 19, 0, tzinfo=CST)
NOISE = "朝阳区望京街道望京西园三区楼下广场舞音响声音太大，晚上十点还在放，{n}号楼居民没法休息。"
INTAKE = Actor("intake", key_id=1)


@pytest.fixture(scope="module")
def predictor(sample_model, taxonomy):
    return Predictor(sample_model, taxonomy)


@pytest.fixture()
def service(tmp_path, taxonomy, predictor):
    engine = make_engine(f"sqlite:///{tmp_path / 'groups.db'}")
    migrate(engine)
    with session_factory(engine)() as session:
        sync_units(session, taxonomy)
        session.commit()
        yield TicketService(session, taxonomy, predictor, review_threshold=0.0)
    engine.dispose()


def receive(service, text, at, phone=None):
    ticket, _ = service.intake(AppealInput(text=text, received_at=at, caller_phone=phone), INTAKE, at=at)
    return ticket


def test_the_same_problem_in_the_same_street_forms_a_group_and_another_problem_does_not(service):
    first = receive(service, NOISE.format(n=2), AT)
    second = receive(service, NOISE.format(n=5), AT + timedelta(minutes=30))
    bikes = receive(service, "朝阳区望京街道望京西园三区门口共享单车乱停放，人行道走不了。", AT + timedelta(hours=1))
    assert first.group_id is not None and first.group_id == second.group_id
    assert bikes.group_id is None


def test_the_same_words_in_another_street_stay_alone(service):
    here = receive(service, NOISE.format(n=2), AT)
    there = receive(service, NOISE.format(n=2).replace("朝阳区望京街道", "海淀区中关村街道"), AT + timedelta(minutes=5))
    assert here.street_id != there.street_id and there.group_id is None


def test_a_group_past_the_window_is_not_joined(service, taxonomy):
    receive(service, NOISE.format(n=2), AT)
    receive(service, NOISE.format(n=3), AT + timedelta(minutes=10))
    later = receive(service, NOISE.format(n=4), AT + timedelta(days=taxonomy.groups.window_days + 1))
    assert later.group_id is None


def test_a_repeat_is_the_same_caller_with_the_same_words_within_the_window(service, taxonomy):
    rules = taxonomy.groups
    first = receive(service, NOISE.format(n=2), AT, phone="13800000001")
    service.session.commit()
    window = timedelta(hours=rules.duplicate_window_hours)
    session, text = service.session, NOISE.format(n=2)
    assert find_repeat(session, rules, "13800000001", "", text, AT + window - timedelta(minutes=1)).id == first.id
    assert find_repeat(session, rules, "13800000001", "", text, AT + window + timedelta(minutes=1)) is None
    assert find_repeat(session, rules, "13900000002", "", text, AT + timedelta(hours=1)) is None
    assert find_repeat(session, rules, None, "", text, AT + timedelta(hours=1)) is None
    again = receive(service, text, AT + timedelta(hours=2), phone="13800000001")
    assert again.duplicate_of == first.id and again.status == Status.CLOSED


def test_the_repeat_key_ignores_full_width_and_traditional_forms():
    assert text_key("", "樓下廣場舞噪音，１０點還在放") == text_key("", "楼下广场舞噪音，10点还在放")
    assert text_key("", "楼下广场舞噪音") != text_key("", "楼下广场舞噪音很大")
