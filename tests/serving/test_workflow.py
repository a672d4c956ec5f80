"""The state machine as a table: every action from every state, for every role."""

from __future__ import annotations

import pytest

from serving.domain.workflow import ALL_STATES, RULES, Actor, IllegalTransition, NotPermitted, check

UNITS = dict(primary="street:1", assigned={"street:1", "dept:x@1"}, whistled={"street:2"})


def actor_for(action: str) -> Actor:
    role = sorted(RULES[action].roles)[0]
    unit = {"whistled": "street:2", "assigned": "street:1", "primary": "street:1"}.get((RULES[action].unit_must_be or "").split("_or_")[0])
    return Actor(role, unit if role == "unit" else None)


@pytest.mark.parametrize("action, state", [(a, s) for a in RULES for s in sorted(ALL_STATES)
                                           if s not in RULES[a].from_states])
def test_every_illegal_transition_is_refused_with_the_current_state(action, state):
    with pytest.raises(IllegalTransition) as err:
        check(action, state, actor_for(action), **UNITS)
    assert err.value.status == state


@pytest.mark.parametrize("action, state", [(a, s) for a in RULES for s in sorted(RULES[a].from_states)])
def test_every_legal_transition_is_allowed(action, state):
    result = check(action, state, actor_for(action), **UNITS)
    assert result is None or result in ALL_STATES


@pytest.mark.parametrize("action, state, expected", [
    ("accept", "dispatched", "accepted"), ("return", "accepted", "review"), ("assign", "review", "dispatched"),
    ("reply", "accepted", "replied"), ("evaluate", "replied", "evaluated"), ("close", "evaluated", "closed"),
    ("reopen", "closed", "dispatched"), ("whistle", "accepted", None), ("mark-unreasonable", "closed", None),
])
def test_where_each_action_leads(action, state, expected):
    assert check(action, state, actor_for(action), **UNITS) == expected


def test_a_co_unit_accepting_does_not_move_the_ticket():
    assert check("accept", "dispatched", Actor("unit", "dept:x@1"), **UNITS) == "dispatched"


@pytest.mark.parametrize("action, actor", [
    ("accept", Actor("unit", "street:9")),  # not assigned
    ("reply", Actor("unit", "dept:x@1")),  # co-unit may not reply for the primary
    ("report-in", Actor("unit", "street:1")),  # only whistled units report in
    ("assign", Actor("unit", "street:1")),
    ("evaluate", Actor("reviewer")),
    ("mark-unreasonable", Actor("callback")),
    ("accept", Actor("intake")),
    ("accept", Actor("admin")),  # an admin records a unit's action only as that unit (as_unit)
])
def test_who_may_act(action, actor):
    state = sorted(RULES[action].from_states)[0]
    with pytest.raises(NotPermitted):
        check(action, state, actor, **UNITS)
