"""督办 as plain data: each missed deadline is flagged once per level, escalating to the district and the
city as the delay grows; a ticket past two deadlines is flagged for both; a review deadline counts too."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from serving.domain.supervision import Deadline, deadlines_of, due_flags
from taxonomy.dispatch import Supervision

T0 = datetime(2026, 11, 2, 9, tzinfo=timezone(timedelta(hours=8)))
RULES = Supervision(district_after=2, city_after=3)


def test_a_missed_deadline_is_flagged_then_escalated_as_the_delay_grows():
    respond = Deadline("respond", T0 + timedelta(hours=2), T0)
    assert due_flags([respond], set(), T0 + timedelta(hours=1), RULES) == []
    first = due_flags([respond], set(), T0 + timedelta(hours=3), RULES)
    assert [(f.kind, f.level) for f in first] == [("respond", "unit")]
    raised = {("respond", respond.due.isoformat(), "unit")}
    assert due_flags([respond], raised, T0 + timedelta(hours=3.5), RULES) == []  # once per level
    later = due_flags([respond], raised, T0 + timedelta(hours=6), RULES)  # 3x the 2 hours allowed
    assert [f.level for f in later] == ["district", "city"]


def test_a_ticket_past_both_deadlines_is_flagged_for_both():
    dispatched_at = T0 + timedelta(hours=1)
    due = deadlines_of("dispatched", T0 + timedelta(hours=3), T0 + timedelta(hours=48), dispatched_at, T0)
    flags = due_flags(due, set(), T0 + timedelta(hours=50), RULES)
    assert {(f.kind, f.level) for f in flags} >= {("respond", "unit"), ("resolve", "unit")}


def test_a_ticket_waiting_for_review_has_a_deadline_too():
    due = deadlines_of("review", T0 + timedelta(hours=2), None, T0, T0)
    assert [d.kind for d in due] == ["review"]
    assert [f.kind for f in due_flags(due, set(), T0 + timedelta(hours=2, minutes=1), RULES)] == ["review"]


def test_an_accepted_ticket_is_held_to_its_resolution_deadline_only():
    due = deadlines_of("accepted", T0 + timedelta(hours=2), T0 + timedelta(hours=48), T0, T0)
    assert [d.kind for d in due] == ["resolve"]
