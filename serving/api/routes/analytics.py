"""GET /v1/analytics/volume: counts and the 三率 for any slice and period, as JSON or CSV."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response

from serving.analytics.volume import VolumeQuery, columns_for, to_csv, volume
from serving.api.deps import Analyst, SessionDep, StateDep
from serving.api.params import period
from serving.api.schemas import AlertOut, AlertsOut, HotspotsOut, VolumeOut

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])


@router.get("/volume", summary="Volume and 三率 by category, place, channel, urgency and period",
            response_model=VolumeOut, response_model_by_alias=True,
            responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}})
def get_volume(state: StateDep, session: SessionDep, actor: Analyst,
               start: Annotated[datetime, Query(alias="from", description="Start (inclusive): a date (that day in the hotline's time zone) or a time")],
               end: Annotated[datetime, Query(alias="to", description="End (exclusive): a date or a time")],
               by: Annotated[str, Query(max_length=100, description="Comma-separated: category,district,street,channel,urgency")] = "",
               interval: Literal["day", "week", "month", "none"] = "day",
               level: Annotated[int, Query(ge=1, le=3, description="Category level for by=category")] = 1,
               format: Literal["json", "csv"] = "json"):
    start, end = period(start, end, state.taxonomy.timezone)
    try:
        query = VolumeQuery(start=start, end=end, by=tuple(d.strip() for d in by.split(",") if d.strip()),
                            interval=None if interval == "none" else interval, level=level)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    rows = volume(session, query, state.taxonomy)
    if format == "csv":
        return Response(to_csv(rows, columns_for(query)), media_type="text/csv; charset=utf-8")
    return VolumeOut(start=start, end=end, interval=query.interval, by=list(query.by), items=rows)


@router.get("/hotspots", summary="Clusters of appeals about one problem in one place and time window",
            response_model=HotspotsOut, response_model_by_alias=True)
def get_hotspots(state: StateDep, session: SessionDep, actor: Analyst,
                 start: Annotated[datetime, Query(alias="from", description="Start (inclusive): a date (that day in the hotline's time zone) or a time")],
                 end: Annotated[datetime, Query(alias="to", description="End (exclusive): a date or a time")],
                 min_size: Annotated[int, Query(ge=2, le=1000)] = 3,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50,
                 category: Annotated[str | None, Query(description="Only tickets under this category path (any level)")] = None,
                 level: Annotated[int, Query(ge=1, le=3, description="The category level each hotspot names")] = 1):
    from serving.analytics.hotspots import find_hotspots
    from serving.analytics.sources import appeals_from_store

    start, end = period(start, end, state.taxonomy.timezone)
    if category is not None and state.taxonomy.categories.find(category) is None:
        raise HTTPException(422, f"category: {category!r} is not in the category tree")
    if category is not None:
        category = state.taxonomy.categories.find(category).label
    appeals = appeals_from_store(session, start, end, category)
    items = [h.to_dict() for h in find_hotspots(appeals, min_size=min_size, top=limit, level=level)]
    for item in items:
        item["ticket_ids"] = [int(t) for t in item["ticket_ids"]]
    return HotspotsOut(start=start, end=end, appeals=len(appeals), items=items)


alerts_router = APIRouter(prefix="/v1", tags=["analytics"])


@alerts_router.get("/alerts", response_model=AlertsOut, response_model_by_alias=True,
                   summary="Days when a category in a place is improbably busy (未诉先办)")
def get_alerts(state: StateDep, session: SessionDep, actor: Analyst,
               start: Annotated[datetime, Query(alias="from", description="Start (inclusive): a date (that day in the hotline's time zone) or a time")],
               end: Annotated[datetime, Query(alias="to", description="End (exclusive): a date or a time")],
               level: Literal["district", "street"] = "district") -> AlertsOut:
    from serving.analytics.alerts import alerts_between

    tz = state.taxonomy.timezone
    start, end = period(start, end, tz)
    try:
        alerts = alerts_between(session, state.taxonomy, start.astimezone(tz).date(), end.astimezone(tz).date(), level)
    except OverflowError:
        raise HTTPException(422, {"message": "from: too early to look back for a baseline", "field": "from"}) from None
    items = []
    for alert in alerts:
        unit = state.taxonomy.units.get(alert.place_id)
        items.append(AlertOut(**alert.to_dict(), place=unit.name if unit else alert.place_id))
    return AlertsOut(start=start, end=end, level=level, items=items)
