"""每月一题: rank the month's candidate problems, and track a chosen one against the months before.

Rules:
- a candidate is a category (at the requested level of the tree) with at least ``MIN_VOLUME`` appeals
  in the month;
- its evidence: the month's volume and share, growth against the mean of the three months before,
  resolution and satisfaction rates, and the group appeals among its tickets;
- its score adds, each on a 0–1 scale: share of the month's volume relative to the largest candidate
  (weight 0.4), growth (0.2; +100% or more counts fully, a fall counts zero), unresolved share (0.2)
  and dissatisfied share (0.2) among evaluated tickets; candidates rank by score;
- a chosen topic is tracked month by month: volume and rates from three months before it was chosen
  to now, with each month's change against the chosen month (the seed reports wage-arrears appeals
  falling 48.7% from February to April this way).
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from sqlalchemy.orm import Session

from serving.analytics.volume import VolumeQuery, volume
from taxonomy import Taxonomy

MIN_VOLUME = 3
WEIGHTS = {"share": 0.4, "growth": 0.2, "unresolved": 0.2, "dissatisfied": 0.2}


def month_bounds(month: str, offset: int, tz: tzinfo) -> tuple[datetime, datetime, str]:
    from serving.services.scores import parse_month

    year, number = map(int, month.split("-"))
    number += offset
    year, number = year + (number - 1) // 12, (number - 1) % 12 + 1
    name = f"{year:04d}-{number:02d}"
    start, end = parse_month(name, tz)
    return start.astimezone(tz), end.astimezone(tz), name


def _by_category(session: Session, taxonomy: Taxonomy, start: datetime, end: datetime, level: int) -> dict:
    rows = volume(session, VolumeQuery(start=start, end=end, by=("category",), interval=None, level=level), taxonomy)
    return {r["category"]: r for r in rows if r["category"]}


def candidates(session: Session, taxonomy: Taxonomy, month: str, level: int = 1, limit: int = 10) -> list[dict]:
    tz = taxonomy.timezone
    start, end, _ = month_bounds(month, 0, tz)
    now = _by_category(session, taxonomy, start, end, level)
    before = [_by_category(session, taxonomy, *month_bounds(month, -k, tz)[:2], level) for k in (1, 2, 3)]
    total = sum(r["appeals"] for r in now.values()) or 1
    largest = max((r["appeals"] for r in now.values()), default=1)
    items = []
    for category, row in now.items():
        if row["appeals"] < MIN_VOLUME:
            continue
        previous = sum(b.get(category, {}).get("appeals", 0) for b in before) / 3
        growth = (row["appeals"] - previous) / previous if previous else None
        unresolved = 1 - row["resolution_rate"] if row["resolution_rate"] is not None else 0.0
        dissatisfied = 1 - row["satisfaction_rate"] if row["satisfaction_rate"] is not None else 0.0
        parts = {"share": row["appeals"] / largest,
                 "growth": 1.0 if growth is None else min(max(growth, 0.0), 1.0),
                 "unresolved": unresolved, "dissatisfied": dissatisfied}
        items.append({
            "category": category, "appeals": row["appeals"], "share": row["appeals"] / total,
            "previous_monthly_mean": round(previous, 2), "growth": growth,
            "resolution_rate": row["resolution_rate"], "satisfaction_rate": row["satisfaction_rate"],
            "evaluated": row["evaluated"],
            "score": round(sum(WEIGHTS[k] * v for k, v in parts.items()), 4), "score_parts": parts})
    items.sort(key=lambda i: (-i["score"], -i["appeals"], i["category"]))
    for rank, item in enumerate(items, start=1):
        item["rank"] = rank
    return items[:limit]


def track(session: Session, taxonomy: Taxonomy, category: str, chosen_month: str, until: datetime,
          level: int) -> list[dict]:
    """The topic's volume and rates month by month, from three months before it was chosen to ``until``."""
    months = []
    offset = -3
    while True:
        start, end, name = month_bounds(chosen_month, offset, taxonomy.timezone)
        if start > until or offset > 36:
            break
        row = _by_category(session, taxonomy, start, end, level).get(category)
        months.append({"month": name, "appeals": row["appeals"] if row else 0,
                       "resolution_rate": row["resolution_rate"] if row else None,
                       "satisfaction_rate": row["satisfaction_rate"] if row else None})
        offset += 1
    base = next((m["appeals"] for m in months if m["month"] == chosen_month), 0)
    for m in months:
        m["change_vs_chosen_month"] = (m["appeals"] - base) / base if base else None
    return months


__all__ = ["candidates", "track", "month_bounds"]
