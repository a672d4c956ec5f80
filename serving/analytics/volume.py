"""Volume and the 三率 for any slice of tickets, computed in SQL that runs on SQLite and PostgreSQL.

Rules:
- a ticket counts in the period it was received, in the hotline's time zone (the profile's); periods
  are days, ISO weeks (named by their Monday) or months (on SQLite the zone's offset at the start of the
  query is used: right for zones without daylight saving time, such as Asia/Shanghai);
- slices: ``category`` (at ``level`` 1, 2 or 3 of the tree; a ticket labelled only at level 1 has no
  level-2 value and falls in the empty slice), ``district``, ``street``, ``channel``, ``urgency``;
- repeats (the same caller with the same words, see ``taxonomy.groups``) are not counted;
- per slice: appeals; dispatched (sent to a unit, not waiting for review); responded on time (the
  current primary unit accepted by its deadline); evaluated, resolved and satisfied from the latest
  callback, leaving out tickets marked unreasonable; satisfied weighs each answer by the taxonomy's
  satisfaction credit; rates as in ``serving.domain.scoring`` (none to count → null here, since a
  slice is not a unit being ranked).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.orm import Session

from serving.store.models import TicketRow
from taxonomy import Taxonomy

DIMENSIONS = ("category", "district", "street", "channel", "urgency")
INTERVALS = ("day", "week", "month")


@dataclass(frozen=True)
class VolumeQuery:
    start: datetime
    end: datetime
    by: tuple[str, ...] = ()
    interval: str | None = "day"
    level: int = 1

    def __post_init__(self) -> None:
        for dim in self.by:
            if dim not in DIMENSIONS:
                raise ValueError(f"by: {dim!r} is not one of {', '.join(DIMENSIONS)}")
        if self.interval is not None and self.interval not in INTERVALS:
            raise ValueError(f"interval: must be one of {', '.join(INTERVALS)}")
        if self.level not in (1, 2, 3):
            raise ValueError("level: must be 1, 2 or 3")
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("from/to: give a timezone")
        if self.end <= self.start:
            raise ValueError("to: must be after from")


def _period(dialect: str, interval: str, tz: tzinfo, at: datetime):
    column = TicketRow.received_at
    if dialect == "sqlite":
        offset = int(at.astimezone(tz).utcoffset().total_seconds() // 60)
        shifted = (column, f"{offset:+d} minutes")
        if interval == "day":
            return func.strftime("%Y-%m-%d", *shifted)
        if interval == "month":
            return func.strftime("%Y-%m", *shifted)
        return func.date(*shifted, "weekday 0", "-6 days")  # the Monday of that week
    local = func.timezone(getattr(tz, "key", "UTC"), column)
    fmt = {"day": "YYYY-MM-DD", "week": "YYYY-MM-DD", "month": "YYYY-MM"}[interval]
    return func.to_char(func.date_trunc(interval, local), fmt)


def _dimension(dim: str, level: int):
    return {"category": getattr(TicketRow, f"category_l{level}"), "district": TicketRow.district_id,
            "street": TicketRow.street_id, "channel": TicketRow.channel, "urgency": TicketRow.urgency}[dim]


def volume(session: Session, query: VolumeQuery, taxonomy: Taxonomy) -> list[dict]:
    """Rows per slice and period; the profile gives the satisfaction credit and the time zone."""
    scoring = taxonomy.scoring
    dialect = session.get_bind().dialect.name
    keys = []
    if query.interval:
        keys.append(_period(dialect, query.interval, taxonomy.timezone, query.start).label("period"))
    keys += [_dimension(dim, query.level).label(dim) for dim in query.by]
    counted = and_(TicketRow.resolved.is_not(None), TicketRow.unreasonable.is_(False))
    credit = case(*[(TicketRow.satisfaction == answer, literal(value))
                    for answer, value in scoring.satisfaction_credit.items()], else_=literal(0.0))

    def total(condition):
        return func.sum(case((condition, 1), else_=0))

    statement = (
        select(*keys,
               func.count().label("appeals"),
               total(TicketRow.primary_unit_id.is_not(None)).label("dispatched"),
               total(and_(TicketRow.accepted_at.is_not(None), TicketRow.respond_by.is_not(None),
                          TicketRow.accepted_at <= TicketRow.respond_by)).label("responded_on_time"),
               total(counted).label("evaluated"),
               total(and_(counted, TicketRow.resolved.is_(True))).label("resolved"),
               func.sum(case((counted, credit), else_=literal(0.0))).label("satisfied"))
        .where(TicketRow.received_at >= query.start, TicketRow.received_at < query.end,
               TicketRow.duplicate_of.is_(None))
        .group_by(*keys).order_by(*keys)
    )
    rows = []
    for row in session.execute(statement).mappings():
        item = dict(row)
        for name in ("dispatched", "responded_on_time", "evaluated", "resolved"):
            item[name] = int(item[name] or 0)
        item["satisfied"] = round(float(item["satisfied"] or 0.0), 4)
        item["response_rate"] = item["responded_on_time"] / item["dispatched"] if item["dispatched"] else None
        item["resolution_rate"] = item["resolved"] / item["evaluated"] if item["evaluated"] else None
        item["satisfaction_rate"] = item["satisfied"] / item["evaluated"] if item["evaluated"] else None
        if "period" in item and item["period"] is not None:
            item["period"] = str(item["period"])[:10]
        rows.append(item)
    return rows


def to_csv(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})
    return buffer.getvalue()


def columns_for(query: VolumeQuery) -> list[str]:
    return ([*(["period"] if query.interval else []), *query.by, "appeals", "dispatched", "responded_on_time",
             "evaluated", "resolved", "satisfied", "response_rate", "resolution_rate", "satisfaction_rate"])


__all__ = ["DIMENSIONS", "INTERVALS", "VolumeQuery", "volume", "to_csv", "columns_for"]
