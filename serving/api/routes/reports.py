"""GET /v1/reports/{kind}?date=: 日通报 / 周汇总 / 月分析 as HTML (printable)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse

from serving.api.deps import Analyst, SessionDep, StateDep
from serving.services.reports import build_report

router = APIRouter(prefix="/v1/reports", tags=["analytics"])


@router.get("/{kind}", response_class=HTMLResponse, summary="A daily, weekly or monthly report as HTML")
def report(kind: Literal["daily", "weekly", "monthly"], date: date, state: StateDep, session: SessionDep,
           actor: Analyst) -> HTMLResponse:
    if not 1900 <= date.year <= 2999:  # the reports look back weeks and ahead a month from the date
        raise HTTPException(422, f"date: {date.isoformat()} is out of range (years 1900–2999)")
    return HTMLResponse(build_report(session, state.taxonomy, kind, date))
