"""三率 scoring: per unit and month, from each ticket's events alone.

Rules (weights, satisfaction credit and bonus come from the taxonomy's ``scoring.yaml``):
- a ticket counts in the month it was received (local time of the hotline, ``tz``);
- a unit is scored for each ticket whose latest dispatch (the system's or a reviewer's) named it as
  primary or co-unit (联合双派 is evaluated jointly); a unit the ticket was taken from is not;
- response: each dispatch round a unit is in owes one response (签收 by the round's deadline): the
  dispatch, and each reopening (重办), which gives the round its own deadline while the earlier rounds'
  responses stay; a re-dispatch to other units starts over. A whistled unit (吹哨) owes a 报到 by the
  whistle's deadline. Response rate = responses on time / responses owed;
- evaluated: the ticket has a callback (回访); the latest one counts; tickets marked unreasonable are
  left out of evaluated, resolved and satisfied (they do not count against the unit);
- resolved: the callback says resolved; satisfied: the sum of the satisfaction credit of its answer;
  resolution rate = resolved / evaluated; satisfaction rate = satisfied / evaluated;
- a rate with nothing to count is **no data** (None), not a perfect 1.0: the unit's score is None and it
  ranks after every unit with all three rates, among them by its response rate;
- bonus: each resolved group appeal and each resolved long-standing problem earns its points, capped per month;
- score = 100 × Σ rate × weight + bonus; rank 1 is best, equal scores share a rank (1, 2, 2, 4);
- a district is scored for the tickets whose primary unit lies in it (its streets, its departments, the
  district itself): the primary's response, the ticket's callback;
- 部门+行业: an industry is scored for the tickets under its categories, as one: every response owed on
  them by any unit, each ticket's callback once; its members (the units of its departments and
  companies) are scored on the same tickets as units are, each with its share of the industry's tickets;
  industries rank among themselves.
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
    dispatched: int = 0  # tickets
    responses_owed: int = 0
    responded_on_time: int = 0
    evaluated: int = 0
    resolved: int = 0
    satisfied: float = 0.0
    response_rate: float | None = None
    resolution_rate: float | None = None
    satisfaction_rate: float | None = None
    bonus: float = 0.0
    score: float | None = None
    rank: int = 0
    ticket_ids: list[int] = field(default_factory=list)
    members: list["UnitScore"] = field(default_factory=list)  # an industry's: its units on its tickets
    share: float | None = None  # a member's: its tickets / the industry's tickets

    @property
    def complete(self) -> bool:
        return None not in (self.response_rate, self.resolution_rate, self.satisfaction_rate)


@dataclass(frozen=True)
class _Outcome:
    units: tuple[str, ...]  # primary and co-units of the latest dispatch
    primary: str | None
    owed: dict[str, int]  # responses owed per unit (rounds it was in, whistles)
    met: dict[str, int]  # of those, on time
    evaluated: bool
    resolved: bool
    satisfaction: str | None
    unreasonable: bool


def _time(payload: dict, key: str) -> datetime | None:
    value = payload.get(key)
    return datetime.fromisoformat(value) if value else None


def outcome(facts: TicketFacts) -> _Outcome:
    units: tuple[str, ...] = ()
    primary: str | None = None
    owed: dict[str, int] = defaultdict(int)
    met: dict[str, int] = defaultdict(int)
    respond_by: datetime | None = None
    answered: set[str] = set()  # units that accepted in the current round
    reports: dict[str, datetime | None] = {}  # whistled unit -> its 报到 deadline, until it reports in
    evaluation: dict | None = None
    unreasonable = False
    for event in facts.events:
        kind, payload = event.kind, event.payload
        if kind in (EventKind.DISPATCHED, EventKind.ASSIGNED) and payload.get("primary_unit_id"):
            primary = payload["primary_unit_id"]
            units = (primary, *payload.get("co_unit_ids", []))
            owed, met, reports = defaultdict(int), defaultdict(int), {}
            respond_by, answered = _time(payload, "respond_by"), set()
            for unit in units:
                owed[unit] += 1
        elif kind == EventKind.RETURNED:
            units, primary, answered = (), None, set()
        elif kind == EventKind.REOPENED:
            respond_by, answered = _time(payload, "respond_by") or respond_by, set()
            for unit in units:
                owed[unit] += 1
        elif kind == EventKind.ACCEPTED and event.unit_id in units and event.unit_id not in answered:
            answered.add(event.unit_id)
            if respond_by is not None and event.at <= respond_by:
                met[event.unit_id] += 1
        elif kind == EventKind.WHISTLED:
            for unit in payload.get("unit_ids", []):
                owed[unit] += 1
                reports[unit] = _time(payload, "report_by")
        elif kind == EventKind.REPORTED_IN and event.unit_id in reports:
            deadline = reports.pop(event.unit_id)
            if deadline is None or event.at <= deadline:
                met[event.unit_id] += 1
        elif kind == EventKind.EVALUATED:
            evaluation = payload
        elif kind == EventKind.MARKED_UNREASONABLE:
            unreasonable = True
    return _Outcome(
        units=units, primary=primary, owed=dict(owed), met=dict(met),
        evaluated=evaluation is not None and not unreasonable,
        resolved=bool(evaluation and evaluation.get("resolved")) and not unreasonable,
        satisfaction=evaluation.get("satisfaction") if evaluation and not unreasonable else None,
        unreasonable=unreasonable)


def month_of(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m")


def score_units(tickets: list[TicketFacts], month: str, rules: ScoringRules, unit_names: dict[str, str],
                tz: tzinfo, district_of: dict[str, str] | None = None) -> list[UnitScore]:
    """Scores of every unit in ``unit_names`` that owed a response for a ticket received in ``month``.
    With ``district_of`` (unit id -> district unit id), the units scored are districts, each for the
    tickets whose primary unit lies in it."""
    scores: dict[str, UnitScore] = {}
    bonus: dict[str, float] = defaultdict(float)
    for facts in tickets:
        if month_of(facts.received_at, tz) != month:
            continue
        result = outcome(facts)
        if district_of is not None:
            district = district_of.get(result.primary or "")
            owed = {district: result.owed.get(result.primary, 0)} if district else {}
            met = {district: result.met.get(result.primary, 0)} if district else {}
            callback_units = {district} if district else set()
        else:
            owed, met, callback_units = result.owed, result.met, set(result.units)
        for unit_id in set(owed) | callback_units:
            if unit_id not in unit_names:
                continue
            s = scores.setdefault(unit_id, UnitScore(unit_id, unit_names[unit_id]))
            bonus[unit_id] += _count(s, facts, result, rules, owed.get(unit_id, 0), met.get(unit_id, 0),
                                     unit_id in callback_units)
    for unit_id, s in scores.items():
        _rates(s, min(bonus[unit_id], rules.bonus.max_per_month), rules)
    return _ranked(list(scores.values()))


def score_industries(tickets: list[tuple[TicketFacts, str | None]], month: str, rules: ScoringRules,
                     tz: tzinfo, industries: list[tuple[str, str, tuple[str, ...]]],
                     members: dict[str, dict[str, str]]) -> list[UnitScore]:
    """``tickets``: each with its category label; ``industries``: (id, name, category labels);
    ``members``: industry id -> {unit id: name}. Industries are returned ranked, each with its members."""
    out = []
    for industry_id, name, labels in industries:
        mine = [facts for facts, category in tickets
                if category and any(category == p or category.startswith(p + "/") for p in labels)]
        s = UnitScore(f"industry:{industry_id}", name)
        bonus = 0.0
        for facts in mine:
            if month_of(facts.received_at, tz) != month:
                continue
            result = outcome(facts)
            bonus += _count(s, facts, result, rules, sum(result.owed.values()), sum(result.met.values()), True)
        _rates(s, min(bonus, rules.bonus.max_per_month), rules)
        s.members = score_units(mine, month, rules, members.get(industry_id, {}), tz)
        for member in s.members:
            member.share = member.dispatched / s.dispatched if s.dispatched else None
        out.append(s)
    return _ranked(out)


def _count(s: UnitScore, facts: TicketFacts, result: _Outcome, rules: ScoringRules, owed: int, met: int,
           called_back: bool) -> float:
    """Count one ticket into ``s``: the responses it owed and met, its callback when the callback is
    ``s``'s (``called_back``); returns the bonus the ticket earns ``s``."""
    s.dispatched += 1
    s.ticket_ids.append(facts.ticket_id)
    s.responses_owed += owed
    s.responded_on_time += met
    if not called_back:
        return 0.0
    if result.evaluated:
        s.evaluated += 1
        s.resolved += result.resolved
        s.satisfied += rules.satisfaction_credit[result.satisfaction]
    if not result.resolved:
        return 0.0
    return (rules.bonus.group_appeal_resolved if facts.group_appeal else 0.0) + \
        (rules.bonus.long_standing_resolved if facts.long_standing else 0.0)


def _rates(s: UnitScore, bonus: float, rules: ScoringRules) -> None:
    weights = rules.weights
    s.response_rate = s.responded_on_time / s.responses_owed if s.responses_owed else None
    s.resolution_rate = s.resolved / s.evaluated if s.evaluated else None
    s.satisfaction_rate = s.satisfied / s.evaluated if s.evaluated else None
    s.bonus = bonus
    if s.complete:
        s.score = round(100 * (s.response_rate * weights.response_rate + s.resolution_rate
                               * weights.resolution_rate + s.satisfaction_rate * weights.satisfaction_rate)
                        + s.bonus, 4)


def _ranked(scores: list[UnitScore]) -> list[UnitScore]:
    ranked = sorted(scores, key=lambda s: (not s.complete, -(s.score if s.complete else (s.response_rate or 0.0)),
                                           s.unit_id))
    for position, s in enumerate(ranked, start=1):
        previous = ranked[position - 2] if position > 1 else None
        same = previous is not None and previous.complete == s.complete and previous.score == s.score and s.complete
        s.rank = previous.rank if same else position
    return ranked
