"""三率 from events alone: hand-made histories with known outcomes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from serving.domain.records import Event
from serving.domain.scoring import TicketFacts, outcome, score_units

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 10, 10, 9, tzinfo=TZ)


def dispatched(primary, co=(), at=T0, hours=24):
    return Event("dispatched", at, "system", payload={"primary_unit_id": primary, "co_unit_ids": list(co),
                                                       "respond_by": (at + timedelta(hours=hours)).isoformat()})


def ev(kind, hours, unit=None, **payload):
    return Event(kind, T0 + timedelta(hours=hours), unit or "callback", unit_id=unit, payload=payload)


def test_joint_dispatch_scores_both_units_and_each_one_s_own_response():
    facts = TicketFacts(1, T0, (dispatched("S", ["D"]), ev("accepted", 1, "S"), ev("accepted", 30, "D"),
                                ev("evaluated", 50, resolved=True, satisfaction="satisfied")))
    result = outcome(facts)
    assert result.units == ("S", "D") and result.on_time == {"S"} and result.resolved


def test_a_reassigned_ticket_leaves_the_first_unit():
    facts = TicketFacts(1, T0, (dispatched("S1"), ev("returned", 2, "S1", reason="不属于"),
                                Event("assigned", T0 + timedelta(hours=3), "reviewer", payload={
                                    "primary_unit_id": "S2", "co_unit_ids": [],
                                    "respond_by": (T0 + timedelta(hours=27)).isoformat()}),
                                ev("accepted", 4, "S2")))
    assert outcome(facts).units == ("S2",) and outcome(facts).on_time == {"S2"}


def test_unreasonable_tickets_do_not_count_against_the_unit(taxonomy):
    bad = TicketFacts(1, T0, (dispatched("S"), ev("accepted", 1, "S"),
                              ev("evaluated", 5, resolved=False, satisfaction="dissatisfied"),
                              ev("marked_unreasonable", 6, reason="超出政策")))
    good = TicketFacts(2, T0, (dispatched("S"), ev("accepted", 1, "S"),
                               ev("evaluated", 5, resolved=True, satisfaction="basically_satisfied")))
    [score] = score_units([bad, good], "2026-10", taxonomy.scoring, {"S": "某街道"}, TZ)
    assert (score.dispatched, score.responded_on_time, score.evaluated, score.resolved) == (2, 2, 1, 1)
    assert score.satisfaction_rate == pytest.approx(taxonomy.scoring.satisfaction_credit["basically_satisfied"])


def test_month_is_the_month_received_in_hotline_time(taxonomy):
    late_night = datetime(2026, 10, 31, 23, 30, tzinfo=TZ)  # 15:30 UTC: still October in Beijing
    facts = TicketFacts(1, late_night.astimezone(timezone.utc), (dispatched("S", at=late_night),))
    assert [s.unit_id for s in score_units([facts], "2026-10", taxonomy.scoring, {"S": "x"}, TZ)] == ["S"]
    assert score_units([facts], "2026-11", taxonomy.scoring, {"S": "x"}, TZ) == []


def test_bonus_is_capped_and_ties_share_a_rank(taxonomy):
    resolved = (ev("accepted", 1, "A"), ev("evaluated", 5, resolved=True, satisfaction="satisfied"))
    many = [TicketFacts(i, T0, (dispatched("A"), *resolved), group_appeal=True, long_standing=True) for i in range(10)]
    tie = [TicketFacts(100 + i, T0, (dispatched(u), ev("accepted", 1, u),
                                     ev("evaluated", 5, resolved=True, satisfaction="satisfied")))
           for i, u in enumerate(["B", "C"])]
    scores = {s.unit_id: s for s in score_units(many + tie, "2026-10", taxonomy.scoring,
                                                {"A": "a", "B": "b", "C": "c"}, TZ)}
    assert scores["A"].bonus == taxonomy.scoring.bonus.max_per_month and scores["A"].rank == 1
    assert scores["B"].score == scores["C"].score == 100.0 and scores["B"].rank == scores["C"].rank == 2
