"""The dashboard (/ui): server-rendered pages for reviewers and supervisors, signed in with an API key.

The key is kept in an HTTP-only, same-site cookie; every page checks it like the API does. Forms post
URL-encoded bodies, parsed here, so no extra form library is needed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select

from serving.api.deps import SessionDep, StateDep
from serving.api.routes.review import review_reasons
from serving.domain.workflow import Actor, IllegalTransition, NotPermitted
from serving.keys import authenticate
from serving.store.models import UnitRow
from serving.tickets import Conflict, InvalidAction, TicketNotFound, TicketService

router = APIRouter(prefix="/ui", include_in_schema=False)
templates = Jinja2Templates(env=Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parents[2] / "templates"),
    autoescape=select_autoescape(["html", "j2"])))  # citizens' text is shown: escape everything
COOKIE = "jiesu_key"


class SignIn(Exception):
    """No valid key in the cookie: the page redirects to the sign-in form."""


def ui_actor(request: Request, session: SessionDep) -> Actor:
    key = request.cookies.get(COOKIE)
    actor = authenticate(session, key) if key else None
    if actor is None:
        raise SignIn()
    return actor


UiActor = Annotated[Actor, Depends(ui_actor)]


def page(request: Request, name: str, **context) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"flash": request.query_params.get("flash"),
                                                      "error": request.query_params.get("error"), **context})


async def form(request: Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8")).items()}


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request):
    return page(request, "ui/login.html.j2", actor=None)


@router.post("/login")
async def login(request: Request, session: SessionDep):
    key = (await form(request)).get("key", "").strip()
    if not key or authenticate(session, key) is None:
        return RedirectResponse("/ui/login?error=" + quote("密钥无效"), status_code=303)
    response = RedirectResponse("/ui/queue", status_code=303)
    response.set_cookie(COOKIE, key, httponly=True, samesite="strict", max_age=12 * 3600)
    return response


@router.post("/logout")
def logout():
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("", include_in_schema=False)
def home():
    return RedirectResponse("/ui/queue", status_code=303)


@router.get("/queue", response_class=HTMLResponse)
def queue(request: Request, state: StateDep, session: SessionDep, actor: UiActor):
    tickets = TicketService(session, state.taxonomy, state.predictor, None).review_queue(limit=200)
    items = []
    for t in tickets:
        c = t.classification
        items.append({"id": t.id, "received_at": t.received_at, "title": t.title, "text": t.text,
                      "reasons": review_reasons(t), "suggestions": c.get("category_top3", []),
                      "place": c.get("street") or c.get("district"), "suggested_unit": t.street_id or t.district_id})
    units = session.execute(select(UnitRow).where(UnitRow.active.is_(True), UnitRow.kind.in_(["street", "district"]))
                            .order_by(UnitRow.id)).scalars().all()
    return page(request, "ui/queue.html.j2", actor=actor, items=items, units=units,
                categories=state.taxonomy.categories.top_level_names)


@router.post("/tickets/{ticket_id}/assign")
async def assign(ticket_id: int, request: Request, state: StateDep, session: SessionDep, actor: UiActor):
    data = await form(request)
    body = {"primary_unit_id": data.get("primary_unit_id", "").strip(), "co_unit_ids": []}
    if data.get("category"):
        body["category"] = data["category"]
    try:
        TicketService(session, state.taxonomy, state.predictor, state.settings.review_threshold).act(
            ticket_id, "assign", body, actor)
    except (TicketNotFound, IllegalTransition, NotPermitted, InvalidAction, Conflict) as exc:
        return RedirectResponse(f"/ui/queue?error={quote(f'工单 {ticket_id}：{exc}')}", status_code=303)
    done = f"工单 {ticket_id} 已派给 {body['primary_unit_id']}"
    return RedirectResponse(f"/ui/queue?flash={quote(done)}",
                            status_code=303)


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket(ticket_id: int, request: Request, state: StateDep, session: SessionDep, actor: UiActor):
    svc = TicketService(session, state.taxonomy, state.predictor, None)
    try:
        t = svc.get(ticket_id)
    except TicketNotFound:
        return RedirectResponse(f"/ui/queue?error={quote(f'工单 {ticket_id} 不存在')}", status_code=303)
    if not svc.visible_to(t, actor):
        return RedirectResponse(f"/ui/queue?error={quote('无权查看该工单')}", status_code=303)
    return page(request, "ui/ticket.html.j2", actor=actor, t=t, names={u.id: u.name for u in state.taxonomy.units})


@router.get("/rankings", response_class=HTMLResponse)
def rankings(request: Request, state: StateDep, session: SessionDep, actor: UiActor, month: str | None = None,
             level: str = "street"):
    from serving.scores import HOTLINE_TZ, monthly_scores

    month = month or datetime.now(HOTLINE_TZ).strftime("%Y-%m")
    try:
        scores = monthly_scores(session, state.taxonomy, month, level)
    except ValueError as exc:
        return page(request, "ui/rankings.html.j2", actor=actor, month=month, level=level, scores=[], error=str(exc))
    return page(request, "ui/rankings.html.j2", actor=actor, month=month, level=level, scores=scores)


@router.get("/hotspots", response_class=HTMLResponse)
def hotspots(request: Request, state: StateDep, session: SessionDep, actor: UiActor, days: int = 7):
    from serving.analytics.alerts import WEEKS, detect, series_from_rows
    from serving.analytics.hotspots import find_hotspots
    from serving.analytics.sources import appeals_from_store
    from serving.analytics.volume import VolumeQuery, volume
    from serving.scores import HOTLINE_TZ

    days = min(max(days, 1), 92)
    end = datetime.now(HOTLINE_TZ).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    start = end - timedelta(days=days)
    found = find_hotspots(appeals_from_store(session, start, end), top=20)
    rows = volume(session, VolumeQuery(start - timedelta(weeks=WEEKS), end, by=("category", "street"),
                                       interval="day"), state.taxonomy.scoring)
    alerts = detect(series_from_rows(rows, "street"), start.date(), end.date())
    return page(request, "ui/hotspots.html.j2", actor=actor, hotspots=found, alerts=alerts, first=start.date(),
                last=(end - timedelta(days=1)).date(), names={u.id: u.name for u in state.taxonomy.units})
