"""三率 scoring: per unit and month, from each ticket's events alone.

Rules (weights, satisfaction credit and bonus come from the taxonomy's ``scoring.yaml``):
- a ticket counts in the month it was received (local time of the hotline, ``tz``);
- a unit is scored for each ticket whose latest dispatch (the system's or a reviewer's) named it as
  primary or co-unit (联合双派 is evaluated jointly); a unit the ticket was taken from is not;
- responded on time: the unit accepted (签收) after that dispatch and no later than its response deadline;
- evaluated: the ticket has a callback (回访); the latest one counts; tickets marked unreasonable are
  left out of evaluated, resolved and satisfied (they do not count against the unit);
- resolved: the callback says resolved; satisfied: the sum of the satisfaction credit of its answer;
- response rate = responded on time / dispatched; resolution rate = resolved / evaluated; satisfaction
  rate = satisfied / evaluated; a rate with nothing to count is 1.0 (nothing went wrong) — the
  counts beside it say so;
- bonus: each resolved group appeal and each resolved long-standing problem earns its points, capped per month;
- score = 100 × Σ rate × weight + bonus; rank 1 is best, equal scores share a rank (1, 2, 2, 4).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from serving.domain.records import Event
from serving.domain.enums import EventKind
from taxonomy.scoring import ScoringRules


@dataclass(frozen=True)
class TicketFacts:
    ticket_id: int
    received_at: datetime
    events: tuple[Event, ...]
    group_appeal: bool = False
    long_standing: bool = False


@dataclass
class UnitScore:
    unit_id: str
    unit_name: str
    dispatched: int = 0
    responded_on_time: int = 0
    evaluated: int = 0
    resolved: int = 0
    satisfied: float = 0.0
    response_rate: float = 1.0
    resolution_rate: float = 1.0
    satisfaction_rate: float = 1.0
    bonus: float = 0.0
    score: float = 0.0
    rank: int = 0
    ticket_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Outcome:
    units: tuple[str, ...]
    on_time: frozenset[str]
    evaluated: bool
    resolved: bool
    satisfaction: str | None
    unreasonable: bool


def outcome(facts: TicketFacts) -> _Outcome:
    units: tuple[str, ...] = ()
    respond_by: datetime | None = None
    dispatched_at: datetime | None = None
    accepted: dict[str, datetime] = {}
    evaluation: dict | None = None
    unreasonable = False
    for event in facts.events:
        if event.kind in (EventKind.DISPATCHED, EventKind.ASSIGNED) and event.payload.get("primary_unit_id"):
            units = (event.payload["primary_unit_id"], *event.payload.get("co_unit_ids", []))
            respond_by = datetime.fromisoformat(event.payload["respond_by"]) if event.payload.get("respond_by") else None
            dispatched_at, accepted = event.at, {}
        elif event.kind == "returned":
            units, accepted = (), {}
        elif event.kind == "reopened":
            respond_by = datetime.fromisoformat(event.payload["respond_by"]) if event.payload.get("respond_by") else respond_by
            dispatched_at, accepted = event.at, {}
        elif event.kind == EventKind.ACCEPTED and event.unit_id and event.unit_id not in accepted:
            accepted[event.unit_id] = event.at
        elif event.kind == EventKind.EVALUATED:
            evaluation = event.payload
        elif event.kind == "marked_unreasonable":
            unreasonable = True
    on_time = frozenset(u for u, at in accepted.items()
                        if u in units and respond_by is not None and dispatched_at is not None and at <= respond_by)
    return _Outcome(
        units=units, on_time=on_time, evaluated=evaluation is not None and not unreasonable,
        resolved=bool(evaluation and evaluation.get("resolved")) and not unreasonable,
        satisfaction=evaluation.get("satisfaction") if evaluation and not unreasonable else None,
        unreasonable=unreasonable)


def month_of(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m")


def score_units(tickets: list[TicketFacts], month: str, rules: ScoringRules, unit_names: dict[str, str],
                tz: tzinfo) -> list[UnitScore]:
    """Scores of every unit in ``unit_names`` that was dispatched a ticket received in ``month``."""
    scores: dict[str, UnitScore] = {}
    bonus: dict[str, float] = defaultdict(float)
    for facts in tickets:
        if month_of(facts.received_at, tz) != month:
            continue
        result = outcome(facts)
        for unit_id in result.units:
            if unit_id not in unit_names:
                continue
            s = scores.setdefault(unit_id, UnitScore(unit_id, unit_names[unit_id]))
            s.dispatched += 1
            s.ticket_ids.append(facts.ticket_id)
            s.responded_on_time += unit_id in result.on_time
            if result.evaluated:
                s.evaluated += 1
                s.resolved += result.resolved
                s.satisfied += rules.satisfaction_credit[result.satisfaction]
            if result.resolved:
                bonus[unit_id] += (rules.bonus.group_appeal_resolved if facts.group_appeal else 0.0) + \
                                  (rules.bonus.long_standing_resolved if facts.long_standing else 0.0)
    weights = rules.weights
    for unit_id, s in scores.items():
        s.response_rate = s.responded_on_time / s.dispatched if s.dispatched else 1.0
        s.resolution_rate = s.resolved / s.evaluated if s.evaluated else 1.0
        s.satisfaction_rate = s.satisfied / s.evaluated if s.evaluated else 1.0
        s.bonus = min(bonus[unit_id], rules.bonus.max_per_month)
        s.score = round(100 * (s.response_rate * weights.response_rate + s.resolution_rate * weights.resolution_rate
                               + s.satisfaction_rate * weights.satisfaction_rate) + s.bonus, 4)
    ranked = sorted(scores.values(), key=lambda s: (-s.score, s.unit_id))
    for position, s in enumerate(ranked, start=1):
        s.rank = position if position == 1 or s.score != ranked[position - 2].score else ranked[position - 2].rank
    return ranked
