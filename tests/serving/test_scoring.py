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
    assert result.units == ("S", "D") and result.owed == {"S": 1, "D": 1} and result.met == {"S": 1}
    assert result.resolved


def test_a_reassigned_ticket_leaves_the_first_unit():
    facts = TicketFacts(1, T0, (dispatched("S1"), ev("returned", 2, "S1", reason="不属于"),
                                Event("assigned", T0 + timedelta(hours=3), "reviewer", payload={
                                    "primary_unit_id": "S2", "co_unit_ids": [],
                                    "respond_by": (T0 + timedelta(hours=27)).isoformat()}),
                                ev("accepted", 4, "S2")))
    assert outcome(facts).units == ("S2",) and outcome(facts).owed == {"S2": 1} and outcome(facts).met == {"S2": 1}


def test_unreasonable_tickets_do_not_count_against_the_unit(taxonomy):
    bad = TicketFacts(1, T0, (dispatched("S"), ev("accepted", 1, "S"),
                              ev("evaluated", 5, resolved=False, satisfaction="dissatisfied"),
                              ev("marked_unreasonable", 6, reason="超出政策")))
    good = TicketFacts(2, T0, (dispatched("S"), ev("accepted", 1, "S"),
                               ev("evaluated", 5, resolved=True, satisfaction="basically_satisfied")))
    [score] = score_units([bad, good], "2026-10", taxonomy.scoring, {"S": "某街道"}, TZ)
    assert (score.dispatched, score.responses_owed, score.responded_on_time, score.evaluated, score.resolved) == \
        (2, 2, 2, 1, 1)
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


def test_a_unit_with_nothing_evaluated_has_no_data_and_ranks_after_units_with_data(taxonomy):
    """Today's wrong answer was 1.0 for rates with nothing to count, ranking such a unit first."""
    answered = TicketFacts(1, T0, (dispatched("A"), ev("accepted", 1, "A"),
                                   ev("evaluated", 5, resolved=False, satisfaction="dissatisfied")))
    waiting = TicketFacts(2, T0, (dispatched("B"), ev("accepted", 1, "B")))
    a, b = score_units([answered, waiting], "2026-10", taxonomy.scoring, {"A": "a", "B": "b"}, TZ)
    assert (a.unit_id, b.unit_id) == ("A", "B")  # B's score is unknown, not perfect
    assert b.resolution_rate is None and b.satisfaction_rate is None and b.score is None and not b.complete
    assert b.response_rate == 1.0 and b.rank == 2 and a.rank == 1 and a.score is not None


def test_reopening_keeps_the_first_rounds_response_and_owes_another(taxonomy):
    """重办: the co-unit answered the first round on time; the reopened round has its own deadline."""
    events = (dispatched("S", ["D"]), ev("accepted", 1, "S"), ev("accepted", 2, "D"),
              ev("reopened", 100, respond_by=(T0 + timedelta(hours=124)).isoformat()),
              ev("accepted", 101, "S"), ev("accepted", 130, "D"))
    result = outcome(TicketFacts(1, T0, events))
    assert result.owed == {"S": 2, "D": 2} and result.met == {"S": 2, "D": 1}


def test_a_whistled_unit_owes_a_report_in_by_its_deadline(taxonomy):
    """吹哨报到: the report-in counts in the whistled unit's response rate."""
    whistle = ev("whistled", 3, "S", unit_ids=["P", "Q"], report_by=(T0 + timedelta(hours=27)).isoformat())
    events = (dispatched("S"), ev("accepted", 1, "S"), whistle, ev("reported_in", 5, "P"), ev("reported_in", 40, "Q"))
    scores = {s.unit_id: s for s in score_units([TicketFacts(1, T0, events)], "2026-10", taxonomy.scoring,
                                                {"S": "s", "P": "p", "Q": "q"}, TZ)}
    assert scores["P"].response_rate == 1.0 and scores["Q"].response_rate == 0.0
    assert scores["P"].evaluated == 0 and scores["P"].resolution_rate is None  # the callback is the primary's


def test_a_district_is_scored_for_the_tickets_whose_primary_lies_in_it(taxonomy):
    tickets = [TicketFacts(1, T0, (dispatched("street:1", ["dept:x@1"]), ev("accepted", 1, "street:1"),
                                   ev("evaluated", 5, resolved=True, satisfaction="satisfied"))),
               TicketFacts(2, T0, (dispatched("street:2"), ev("accepted", 30, "street:2"))),
               TicketFacts(3, T0, (dispatched("dept:y"),))]  # a city department: no district
    district_of = {"street:1": "district:A", "dept:x@1": "district:A", "street:2": "district:A"}
    [district] = score_units(tickets, "2026-10", taxonomy.scoring, {"district:A": "甲区"}, TZ, district_of)
    assert (district.dispatched, district.responses_owed, district.responded_on_time) == (2, 2, 1)
    assert (district.evaluated, district.resolved) == (1, 1)


def test_an_industry_is_scored_as_one_over_its_tickets_with_each_members_share(taxonomy):
    from serving.domain.scoring import score_industries

    heating = [  # 供暖: a street and the heating company on one ticket, the company alone on another
        (TicketFacts(1, T0, (dispatched("street:1", ["company:heating"]), ev("accepted", 1, "street:1"),
                             ev("accepted", 30, "company:heating"),
                             ev("evaluated", 50, resolved=True, satisfaction="satisfied"))), "城乡建设/供暖/暖气不热"),
        (TicketFacts(2, T0, (dispatched("company:heating"), ev("accepted", 2, "company:heating"),
                             ev("evaluated", 60, resolved=False, satisfaction="dissatisfied"))), "城乡建设/供暖"),
        (TicketFacts(3, T0, (dispatched("street:1"), ev("accepted", 1, "street:1"))), "城乡建设/物业管理"),
    ]
    industries = [("heating", "供暖", ("城乡建设/供暖",)), ("property", "物业管理", ("城乡建设/物业管理",))]
    members = {"heating": {"company:heating": "热力集团"}, "property": {}}
    ranked = score_industries(heating, "2026-10", taxonomy.scoring, TZ, industries, members)
    by_id = {s.unit_id: s for s in ranked}
    joint = by_id["industry:heating"]
    assert joint.dispatched == 2 and joint.responses_owed == 3 and joint.responded_on_time == 2
    assert joint.evaluated == 2 and joint.resolved == 1 and joint.resolution_rate == 0.5
    (company,) = joint.members  # the street is not a member of the industry
    assert company.unit_id == "company:heating" and company.dispatched == 2 and company.share == 1.0
    assert company.response_rate == 0.5  # on time on ticket 2, late on ticket 1
    assert by_id["industry:property"].dispatched == 1 and by_id["industry:property"].score is None  # no callback
    assert [s.unit_id for s in ranked] == ["industry:heating", "industry:property"]  # no data ranks last


def test_the_profile_names_industries_with_known_categories_departments_and_companies(taxonomy):
    ids = {i.id: i for i in taxonomy.scoring.industries}
    assert {"heating", "property", "water", "gas", "transit", "telecom"} <= set(ids)
    assert ids["heating"].companies == ["heating"] and all(label in taxonomy.categories for label in ids["water"].categories)
