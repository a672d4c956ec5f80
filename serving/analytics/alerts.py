"""Trend alerts (未诉先办): a day whose count of one category in one place is improbably high.

Rules:
- series are daily counts per first-level category × district (or street), in hotline time;
- the expected count for a day is the series' mean over the previous ``weeks`` weeks (a level that
  follows the season, because it looks only a few weeks back) times that weekday's factor (the weekday
  rhythm, pooled over all series so that it is stable), never below ``floor`` (a quiet place is not a
  place where nothing can happen);
- the day alerts when at least ``min_count`` appeals came and a Poisson count with that expectation
  would reach the observed count with probability below ``alpha``; the alert carries the observed and
  expected counts, that probability and the baseline days it was computed from.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from scipy.stats import poisson

WEEKS = 4
ALPHA = 1e-3
MIN_COUNT = 5
FLOOR = 0.25


@dataclass(frozen=True)
class Alert:
    category: str
    place_id: str
    date: date
    observed: int
    expected: float
    p_value: float
    baseline: list[int]

    def to_dict(self) -> dict:
        return {"category": self.category, "place_id": self.place_id, "date": self.date.isoformat(),
                "observed": self.observed, "expected": round(self.expected, 3), "p_value": self.p_value,
                "baseline": self.baseline}


def weekday_factors(series: dict[tuple[str, str], dict[date, int]]) -> list[float]:
    """Each weekday's share of the volume, relative to an average day, over every series (1.0 each when
    there is too little data to say)."""
    totals, days = [0.0] * 7, [set() for _ in range(7)]
    for counts in series.values():
        for day, count in counts.items():
            totals[day.weekday()] += count
            days[day.weekday()].add(day)
    per_day = [totals[w] / len(days[w]) if days[w] else 0.0 for w in range(7)]
    mean = sum(per_day) / 7
    if mean <= 0 or min(len(d) for d in days) < 2:
        return [1.0] * 7
    return [max(p / mean, 0.2) for p in per_day]


def expected_count(counts: dict[date, int], day: date, factors: list[float], weeks: int = WEEKS,
                   floor: float = FLOOR) -> tuple[float, list[int]]:
    baseline = [counts.get(day - timedelta(days=k), 0) for k in range(1, 7 * weeks + 1)]
    return max(sum(baseline) / len(baseline) * factors[day.weekday()], floor), baseline


def detect(series: dict[tuple[str, str], dict[date, int]], start: date, end: date, weeks: int = WEEKS,
           alpha: float = ALPHA, min_count: int = MIN_COUNT, floor: float = FLOOR) -> list[Alert]:
    """Alerts for every day in [start, end) of every (category, place) series."""
    factors = weekday_factors(series)
    alerts = []
    for (category, place), counts in series.items():
        for day, observed in counts.items():
            if not (start <= day < end) or observed < min_count:
                continue
            expected, baseline = expected_count(counts, day, factors, weeks, floor)
            p_value = float(poisson.sf(observed - 1, expected))  # P(X >= observed)
            if p_value < alpha:
                alerts.append(Alert(category, place, day, observed, expected, p_value, baseline))
    return sorted(alerts, key=lambda a: (a.date, a.p_value))


def series_from_rows(rows: list[dict], place_key: str) -> dict[tuple[str, str], dict[date, int]]:
    """Volume rows (period, category, district|street, appeals) into per-series daily counts."""
    series: dict[tuple[str, str], dict[date, int]] = defaultdict(dict)
    for row in rows:
        if row.get("category") and row.get(place_key):
            series[(row["category"], row[place_key])][date.fromisoformat(row["period"])] = row["appeals"]
    return series


def alerts_between(session, taxonomy, first: date, last: date, level: str = "street") -> list[Alert]:
    """The alerts of the days [first, last) for one place level: the slices' daily volumes with their
    baseline weeks before, read from the store in the profile's time zone — the one pipeline the API, the
    dashboard and the reports share."""
    from datetime import datetime, time, timedelta

    from serving.analytics.volume import VolumeQuery, volume

    start = datetime.combine(first, time(), taxonomy.timezone)
    end = datetime.combine(last, time(), taxonomy.timezone)
    rows = volume(session, VolumeQuery(start - timedelta(weeks=WEEKS), end, by=("category", level), interval="day"),
                  taxonomy)
    return detect(series_from_rows(rows, level), first, last)
