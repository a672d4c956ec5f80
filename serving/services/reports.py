"""日通报 / 周汇总 / 月分析: one HTML report per period, readable by a person and printable.

Rules:
- a daily report covers one day, a weekly report the ISO week (Monday to Sunday) holding the date, a
  monthly report the calendar month holding it, all in hotline time;
- every report has: the period's appeals and 三率; the volume trend (the 14 days up to the period's
  end for a daily report, the period itself otherwise); categories; districts and streets; the 三率
  ranking of streets for the month; overdue and urgent (levels 1–2) tickets; hotspots; trend alerts;
  and, in the monthly report, the 每月一题 candidates and the open problem ledger;
- charts are inline SVG, so the file stands alone and prints as it shows.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.domain.privacy import mask

from serving.analytics.alerts import alerts_between
from serving.analytics.hotspots import find_hotspots
from serving.analytics.sources import appeals_from_store
from serving.analytics.topics import candidates
from serving.analytics.volume import VolumeQuery, volume
from serving.analytics.charts import cjk_font
from serving.services.scores import monthly_scores
from serving.store.models import LedgerEntryRow, TicketRow
from serving.domain.enums import STATUS_NAMES, Status
from taxonomy import Taxonomy

KINDS = {"daily": "日通报", "weekly": "周汇总", "monthly": "月分析"}
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


@dataclass(frozen=True)
class Period:
    kind: str
    first: date
    last: date  # exclusive
    tz: tzinfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), self.tz)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last, time(), self.tz)


def period_for(kind: str, day: date, tz: tzinfo) -> Period:
    if kind == "daily":
        return Period(kind, day, day + timedelta(days=1), tz)
    if kind == "weekly":
        monday = day - timedelta(days=day.weekday())
        return Period(kind, monday, monday + timedelta(days=7), tz)
    if kind == "monthly":
        first = day.replace(day=1)
        return Period(kind, first, (first + timedelta(days=32)).replace(day=1), tz)
    raise ValueError(f"kind: must be one of {', '.join(KINDS)}")


def _svg(draw) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    font = cjk_font()
    with plt.rc_context({"font.family": [font, "DejaVu Sans"]} if font else {}):
        fig, ax = plt.subplots(figsize=(7.5, 2.8))
        draw(ax)
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
        plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]


def build_report(session: Session, taxonomy: Taxonomy, kind: str, day: date) -> str:
    period = period_for(kind, day, taxonomy.timezone)
    names = {u.id: u.name for u in taxonomy.units}
    summary = volume(session, VolumeQuery(period.start, period.end, interval=None), taxonomy)
    trend_start = period.end - timedelta(days=14) if kind == "daily" else period.start
    trend = volume(session, VolumeQuery(trend_start, period.end, interval="day"), taxonomy)
    categories = volume(session, VolumeQuery(period.start, period.end, by=("category",), interval=None), taxonomy)
    districts = volume(session, VolumeQuery(period.start, period.end, by=("district",), interval=None), taxonomy)
    streets = volume(session, VolumeQuery(period.start, period.end, by=("street",), interval=None), taxonomy)
    month = period.first.strftime("%Y-%m")
    ranking = monthly_scores(session, taxonomy, month, "street")
    industries = monthly_scores(session, taxonomy, month, "industry") if kind == "monthly" else []
    overdue = session.execute(select(TicketRow).where(
        TicketRow.status.in_([Status.DISPATCHED, Status.ACCEPTED]), TicketRow.resolve_by < period.end,
        TicketRow.received_at < period.end).order_by(TicketRow.resolve_by).limit(30)).scalars().all()
    urgent = session.execute(select(TicketRow).where(
        TicketRow.urgency <= 2, TicketRow.received_at >= period.start, TicketRow.received_at < period.end,
        TicketRow.duplicate_of.is_(None)).order_by(TicketRow.urgency, TicketRow.received_at).limit(30)).scalars().all()
    hotspots = find_hotspots(appeals_from_store(session, period.start, period.end), top=10)
    alerts = alerts_between(session, taxonomy, period.first, period.last, "street")
    topic_items = candidates(session, taxonomy, month, limit=5) if kind == "monthly" else []
    ledger = session.execute(select(LedgerEntryRow).where(LedgerEntryRow.status == "open")).scalars().all() \
        if kind == "monthly" else []

    charts = {}
    if trend:
        charts["trend"] = _svg(lambda ax: (ax.plot([r["period"][5:] for r in trend], [r["appeals"] for r in trend],
                                                   marker="o"), ax.set_ylabel("诉求量"),
                                           ax.tick_params(axis="x", rotation=45, labelsize=7)))
    if categories:
        top = sorted(categories, key=lambda r: -r["appeals"])[:10]
        charts["categories"] = _svg(lambda ax: (ax.barh([r["category"] or "未分类" for r in top][::-1],
                                                        [r["appeals"] for r in top][::-1]), ax.set_xlabel("诉求量")))
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    environment.filters["masked"] = mask  # a report is read widely: no citizen's numbers in it
    return environment.get_template("report.html.j2").render(
        kind=kind, kind_name=KINDS[kind], period=period, generated=datetime.now(taxonomy.timezone),
        summary=summary[0] if summary else None, charts=charts,
        categories=sorted(categories, key=lambda r: -r["appeals"]),
        districts=sorted(districts, key=lambda r: -r["appeals"])[:10],
        streets=sorted((s for s in streets if s["street"]), key=lambda r: -r["appeals"])[:10],
        ranking=ranking, industries=industries, overdue=overdue, urgent=urgent, hotspots=hotspots, alerts=alerts,
        topics=topic_items, ledger=ledger, names=names, month=month, status_names=STATUS_NAMES)
