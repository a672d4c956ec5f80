"""三率 scores from the store: load the month's tickets and their events, score them in the domain — per
unit of a level, or per industry (部门+行业, the profile's ``scoring.yaml``) with its members' shares."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from serving.domain.enums import EventKind
from serving.domain.records import Event
from serving.domain.scoring import TicketFacts, UnitScore, score_industries, score_units
from serving.store.models import TicketRow, UnitRow
from taxonomy import Taxonomy

LEVELS = ("street", "district", "department", "company", "industry")


def parse_month(month: str, tz: tzinfo) -> tuple[datetime, datetime]:
    """The month's bounds in UTC, its days counted in the hotline's time zone ``tz``."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=tz)
    except ValueError:
        raise ValueError(f"month: {month!r} is not YYYY-MM") from None
    try:
        end = (start + timedelta(days=32)).replace(day=1)
        return start.astimezone(timezone.utc), end.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"month: {month!r} is out of range") from None


def monthly_scores(session: Session, taxonomy: Taxonomy, month: str, level: str) -> list[UnitScore]:
    if level not in LEVELS:
        raise ValueError(f"level: must be one of {', '.join(LEVELS)}")
    start, end = parse_month(month, taxonomy.timezone)
    rows = session.execute(select(TicketRow).where(TicketRow.received_at >= start, TicketRow.received_at < end,
                                                   TicketRow.duplicate_of.is_(None))  # a repeat is not a new case
                           .options(selectinload(TicketRow.events))).scalars()
    facts, categories = [], []
    for t in rows:
        events = tuple(Event(kind=e.kind, at=e.at, actor=e.actor, unit_id=e.unit_id, payload=e.payload)
                       for e in t.events)
        facts.append(TicketFacts(ticket_id=t.id, received_at=t.received_at, group_appeal=t.group_appeal,
                                 long_standing=long_standing(events), events=events))
        categories.append(t.category)
    units = session.execute(select(UnitRow)).scalars().all()
    if level == "industry":
        industries = taxonomy.scoring.industries
        members = {i.id: {u.id: u.name for u in units
                          if (u.kind == "department" and u.department_id in i.departments)
                          or (u.kind == "company" and u.id.split(":", 1)[1] in i.companies)} for i in industries}
        return score_industries(list(zip(facts, categories)), month, taxonomy.scoring, taxonomy.timezone,
                                [(i.id, i.name, tuple(i.categories)) for i in industries], members)
    names = {u.id: u.name for u in units if u.kind == level}
    district_of = {u.id: f"district:{u.district_code}" for u in units if u.district_code} if level == "district" \
        else None
    return score_units(facts, month, taxonomy.scoring, names, taxonomy.timezone, district_of)


def visible_scores(scores: list[UnitScore], actor, level: str) -> list[UnitScore]:
    """What ``actor`` sees of a ranking: a unit its own line — at level industry, the industries it
    belongs to with its own line among their members; every other role the whole ranking."""
    if actor.role != "unit":
        return scores
    if level != "industry":
        return [s for s in scores if s.unit_id == actor.unit_id]
    mine = [s for s in scores if any(m.unit_id == actor.unit_id for m in s.members)]
    for s in mine:
        s.members = [m for m in s.members if m.unit_id == actor.unit_id]
    return mine


def long_standing(events) -> bool:
    """历史遗留问题: what the latest reviewer's assignment that said so said (the flag has its event)."""
    for event in reversed(events):
        if event.kind == EventKind.ASSIGNED and "long_standing" in event.payload:
            return bool(event.payload["long_standing"])
    return False
