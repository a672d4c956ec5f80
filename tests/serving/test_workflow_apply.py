"""``apply``: every action from every state it is allowed in yields the ticket it leaves and the events that
record the change, as plain data — no database, no server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from serving.domain.actions import InvalidAction
from serving.domain.enums import EventKind, Status, UnitRole
from serving.domain.workflow import (RULES, Actor, Context, IllegalTransition, TicketState, UnitInfo, UnitState,
                                     apply)

CST = timezone(timedelta(hours=8))
RECEIVED = datetime(2026, 11, 2, 9, 0, tzinfo=CST)
LATER = RECEIVED + timedelta(hours=1)
STREET, DEPT, OTHER = "street:110105001", "dept:management@110105", "street:110105002"
UNITS = {STREET: UnitInfo("street", "110105"), OTHER: UnitInfo("street", "110105"),
         DEPT: UnitInfo("department", "110105", "management"), "company:heating": UnitInfo("company"),
         "district:110105": UnitInfo("district", "110105")}
BODIES = {
    "accept": {}, "return": {"reason": "不属于本街道"}, "assign": {"primary_unit_id": OTHER},
    "whistle": {"unit_ids": [DEPT], "note": "请到场"}, "report-in": {"text": "已到场"}, "note": {"text": "已联系居民"},
    "reply": {"text": "已恢复供暖", "solved": True}, "evaluate": {"resolved": True, "satisfaction": "satisfied"},
    "reopen": {"reason": "仍不热"}, "close": {}, "mark-unreasonable": {"reason": "重复恶意诉求"},
}
EVENTS = {"accept": EventKind.ACCEPTED, "return": EventKind.RETURNED, "assign": EventKind.ASSIGNED,
          "whistle": EventKind.WHISTLED, "report-in": EventKind.REPORTED_IN, "note": EventKind.NOTED,
          "reply": EventKind.REPLIED, "evaluate": EventKind.EVALUATED, "reopen": EventKind.REOPENED,
          "close": EventKind.CLOSED, "mark-unreasonable": EventKind.MARKED_UNREASONABLE}


@pytest.fixture
def context(taxonomy) -> Context:
    return Context(taxonomy.urgency, taxonomy.categories, tuple(taxonomy.appeal_types.names), UNITS.get)


def ticket(status: str) -> TicketState:
    units = (UnitState(STREET, UnitRole.PRIMARY, RECEIVED, RECEIVED + timedelta(hours=2)),
             UnitState(DEPT, UnitRole.CO, RECEIVED, RECEIVED + timedelta(hours=2)),
             UnitState(OTHER, UnitRole.WHISTLED, RECEIVED))
    return TicketState(status=status, mode="joint", received_at=RECEIVED, category="城乡建设/供暖/暖气不热", urgency=2,
                       appeal_type="投诉", primary_unit_id=STREET, respond_by=RECEIVED + timedelta(hours=2),
                       resolve_by=RECEIVED + timedelta(hours=48), street_id=STREET, district_id="district:110105",
                       department_id="management", company_id="heating",
                       classification={"category": "城乡建设/供暖/暖气不热", "urgency": 2, "appeal_type": "投诉",
                                       "dispatch_primary_unit_id": STREET, "department": "management",
                                       "company": "heating"}, units=units)


def actor(action: str) -> Actor:
    who = {"assigned": STREET, "primary": STREET, "whistled": OTHER}.get((RULES[action].unit_must_be or "").split("_or_")[0])
    role = sorted(RULES[action].roles)[0]
    return Actor(role, who if role == "unit" else None, key_id=7)


@pytest.mark.parametrize("action, status", [(a, s) for a in RULES for s in sorted(RULES[a].from_states)])
def test_every_allowed_action_yields_its_event_and_a_legal_state(action, status, context):
    before = ticket(status)
    after, events = apply(before, action, BODIES[action], actor(action), LATER, context)
    assert [e.kind for e in events] == [EVENTS[action]]
    assert events[0].at == LATER and events[0].actor == actor(action).name
    assert after.status in set(Status)
    expected = RULES[action].to_state or (Status.ACCEPTED if action == "accept" else status)
    assert after.status == expected


@pytest.mark.parametrize("action, status", [(a, s) for a in RULES for s in sorted(set(Status) - RULES[a].from_states)])
def test_every_refused_action_changes_nothing(action, status, context):
    with pytest.raises(IllegalTransition):
        apply(ticket(status), action, BODIES[action], actor(action), LATER, context)


def test_accepting_records_the_time_for_the_primary_and_for_a_co_unit(context):
    after, _ = apply(ticket(Status.DISPATCHED), "accept", {}, Actor("unit", DEPT), LATER, context)
    assert after.status == Status.DISPATCHED and after.accepted_at is None  # a co-unit does not move it
    co = next(u for u in after.units if u.unit_id == DEPT)
    assert co.accepted_at == LATER
    after, _ = apply(after, "accept", {}, Actor("unit", STREET), LATER, context)
    assert after.status == Status.ACCEPTED and after.accepted_at == LATER


def test_a_reviewers_assignment_corrects_the_path_and_names_the_units_owners(context):
    body = {"primary_unit_id": OTHER, "co_unit_ids": [DEPT, "company:heating"], "category": "城乡建设/供暖/供暖费",
            "urgency": 3, "appeal_type": "咨询", "long_standing": True}
    after, [event] = apply(ticket(Status.REVIEW), "assign", body, Actor("reviewer", key_id=3), LATER, context)
    assert after.category == "城乡建设/供暖/供暖费" and after.urgency == 3 and after.appeal_type == "咨询"
    assert after.street_id == OTHER and after.primary_unit_id == OTHER and after.mode == "joint"
    assert [u.unit_id for u in after.units if u.active] == [OTHER, DEPT, "company:heating"]
    assert after.respond_by == LATER + timedelta(hours=24)  # level 3 responds in a day, from now
    assert after.resolve_by == RECEIVED + timedelta(hours=168)  # and resolves in a week, from receipt
    payload = event.payload
    assert payload["corrected"] and payload["department"] == "management" and payload["company"] == "heating"
    assert payload["long_standing"] is True and after.long_standing  # the flag that pays a bonus has its event
    assert payload["before"]["category"] == "城乡建设/供暖/暖气不热"


@pytest.mark.parametrize("action, body, field", [
    ("assign", {"primary_unit_id": "street:999"}, "primary_unit_id"),
    ("assign", {"primary_unit_id": OTHER, "category": "不存在"}, "category"),
    ("assign", {"primary_unit_id": OTHER, "urgency": 5}, "urgency"),
    ("assign", {"primary_unit_id": OTHER, "appeal_type": "抱怨"}, "appeal_type"),
    ("assign", {"primary_unit_id": OTHER, "colour": "red"}, "colour"),
    ("reply", {"text": "已处理", "solved": "yes"}, "solved"),
    ("reply", {"text": "   ", "solved": True}, "text"),
    ("evaluate", {"resolved": True, "satisfaction": "happy"}, "satisfaction"),
    ("whistle", {"unit_ids": []}, "unit_ids"),
], ids=["未知单位", "未知分类", "紧急程度", "类型", "多余字段", "布尔", "空答复", "满意度", "吹哨无单位"])
def test_a_bad_body_names_its_field(action, body, field, context):
    status = sorted(RULES[action].from_states)[0]
    if action == "reply":
        status = Status.ACCEPTED
    with pytest.raises(InvalidAction) as caught:
        apply(ticket(status), action, body, actor(action), LATER, context)
    assert caught.value.field == field


def test_reopening_gives_the_units_a_new_response_deadline(context):
    after, [event] = apply(ticket(Status.EVALUATED), "reopen", {"reason": "仍不热"}, Actor("callback"), LATER, context)
    assert after.status == Status.DISPATCHED and after.respond_by == LATER + timedelta(hours=2)
    active = [u for u in after.units if u.role in (UnitRole.PRIMARY, UnitRole.CO)]
    assert all(u.respond_by == LATER + timedelta(hours=2) and u.accepted_at is None for u in active)


def test_the_callbacks_comment_and_the_report_ins_text_are_kept(context):
    _, [evaluated] = apply(ticket(Status.REPLIED), "evaluate", {"resolved": False, "satisfaction": "dissatisfied",
                                                                "comment": "暖气还是凉的"}, Actor("callback"), LATER,
                           context)
    assert evaluated.payload["comment"] == "暖气还是凉的"
    after, [reported] = apply(ticket(Status.ACCEPTED), "report-in", {"text": "已派人检修"}, Actor("unit", OTHER),
                              LATER, context)
    assert reported.payload["text"] == "已派人检修"
    assert next(u for u in after.units if u.unit_id == OTHER).accepted_at == LATER


def test_a_whistled_unit_notes_and_replies_on_its_part_and_reports_in_by_a_deadline(context):
    state = ticket(Status.ACCEPTED)
    noted, _ = apply(state, "note", {"text": "已到场查看"}, Actor("unit", OTHER), LATER, context)
    part, [event] = apply(state, "reply", {"text": "管线已修复", "solved": True}, Actor("unit", OTHER), LATER, context)
    assert part.status == Status.ACCEPTED and event.payload["part"] is True  # the primary still answers
    whistled, [call] = apply(state, "whistle", {"unit_ids": [DEPT]}, Actor("unit", STREET), LATER, context)
    assert call.payload["report_by"] == (LATER + timedelta(hours=context.report_in_hours)).isoformat()


def test_a_returned_ticket_waits_for_review_with_a_deadline(context):
    after, [event] = apply(ticket(Status.ACCEPTED), "return", {"reason": "不属于本街道"}, Actor("unit", STREET), LATER,
                           context)
    assert after.status == Status.REVIEW and after.respond_by == LATER + timedelta(hours=context.review_hours)
    assert event.payload["review_by"] == after.respond_by.isoformat()
