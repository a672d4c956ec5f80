"""The dashboard (/ui): server-rendered pages for reviewers and supervisors, signed in with an API key.

The key is kept in an HTTP-only, same-site cookie; every page checks it like the API does. Forms post
URL-encoded bodies, parsed here, so no extra form library is needed.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from serving.api.deps import SessionDep, StateDep, TicketServiceDep
from serving.api.routes.review import review_reasons
from serving.domain.enums import EVENT_NAMES, STATUS_NAMES
from serving.domain.privacy import mask, shown, shown_payload, view_for
from serving.domain.workflow import Actor, IllegalTransition, NotPermitted
from serving.services.keys import authenticate
from serving.services.tickets import Conflict, InvalidAction, TicketNotFound
from serving.services.units import unit_labels

router = APIRouter(prefix="/ui", include_in_schema=False)
templates = Jinja2Templates(env=Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parents[2] / "templates"),
    autoescape=select_autoescape(["html", "j2"])))  # citizens' text is shown: escape everything
COOKIE = "jiesu_key"
templates.env.filters["rate"] = lambda v: "无数据" if v is None else f"{100 * v:.1f}%"
templates.env.filters["status_zh"] = lambda v: STATUS_NAMES.get(v, v)
templates.env.filters["event_zh"] = lambda v: EVENT_NAMES.get(v, v)
templates.env.filters["readable"] = lambda payload: json.dumps(payload, ensure_ascii=False, default=str)


class SignIn(Exception):
    """No valid key in the cookie: the page redirects to the sign-in form."""


def ui_actor(request: Request, session: SessionDep) -> Actor:
    key = request.cookies.get(COOKIE)
    actor = authenticate(session, key) if key else None
    if actor is None:
        raise SignIn()
    return actor


UiActor = Annotated[Actor, Depends(ui_actor)]


class UiForbidden(Exception):
    """The signed-in key's role may not see this page (the same roles as its API)."""

    def __init__(self, role: str, roles: tuple[str, ...]):
        super().__init__(f"{role} 角色无权查看此页面（需要：{'、'.join(roles)}）")


def ui_role(*roles: str):
    def check(actor: UiActor) -> Actor:
        if actor.role != "admin" and actor.role not in roles:
            raise UiForbidden(actor.role, roles)
        return actor

    return check


UiReviewer = Annotated[Actor, Depends(ui_role("reviewer"))]  # as /v1/review and the assign action
UiAnalyst = Annotated[Actor, Depends(ui_role("analyst", "reviewer"))]  # as /v1/analytics


def page(request: Request, name: str, status_code: int = 200, **context) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"flash": request.query_params.get("flash"),
                                                      "error": request.query_params.get("error"), **context},
                                      status_code=status_code)


async def form(request: Request) -> dict[str, str]:
    """The form's fields; a body that is not UTF-8, or holds a NUL, is the client's fault (400)."""
    try:
        fields = parse_qs((await request.body()).decode("utf-8"), errors="strict")
    except UnicodeDecodeError:
        raise HTTPException(400, "the form is not UTF-8") from None
    if any("\x00" in k or any("\x00" in v for v in values) for k, values in fields.items()):
        raise HTTPException(400, "the form holds a NUL character")
    return {k: v[0] for k, v in fields.items()}


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
def home(actor: UiActor):
    target = {"reviewer": "queue", "admin": "queue", "analyst": "hotspots"}.get(actor.role, "rankings")
    return RedirectResponse(f"/ui/{target}", status_code=303)


REASONS = {"low_confidence": "置信度不足", "no_place": "无法确定地点", "no_owner": "分类无主责部门",
           "no_rule": "无匹配派单规则", "returned": "承办单位退单", "review_overdue": "审核超时",
           "no_model": "模型未加载"}
LEVELS = {"category_level_1": "一级分类", "category_level_2": "二级分类", "category_level_3": "三级分类",
          "department": "主责部门"}


def review_explained(ticket) -> list[str]:
    """The queue's reasons in words, with the level at which confidence failed."""
    detail = {}
    for event in reversed(ticket.events):
        if event.kind == "queued_for_review":
            detail = event.payload.get("detail") or {}
            break
    out = []
    for reason in review_reasons(ticket):
        text = REASONS.get(reason, reason)
        if reason == "low_confidence" and detail:
            text += f"：{LEVELS.get(detail.get('failed'), detail.get('failed'))}（{detail['confidence']:.2f} < {detail['threshold']:.2f}）"
        out.append(text)
    return out


@router.get("/queue", response_class=HTMLResponse)
def queue(request: Request, state: StateDep, session: SessionDep, svc: TicketServiceDep, actor: UiReviewer):
    tickets = svc.review_queue(limit=200)
    labels = unit_labels(session)
    units = state.taxonomy.units
    items = []
    for t in tickets:
        c = t.classification
        district = units.get(t.district_id) if t.district_id else None
        department = units.department(c["department"], district.district_code if district else None) \
            if c.get("department") else None
        place = t.street_id or t.district_id
        items.append({"id": t.id, "received_at": t.received_at, "title": mask(t.title), "text": mask(t.text),
                      "reasons": review_explained(t), "suggestions": c.get("category_top3", []),
                      "guess": "/".join(c.get("category_guess") or [c.get("category", "")]),
                      "category": t.category, "urgency": t.urgency, "appeal_type": t.appeal_type,
                      "place": c.get("street") or c.get("district"),
                      "suggested_unit": labels.get(place, "") if place else "",
                      "suggested_department": labels.get(department.id, "") if department else "",
                      "suggested_company": labels.get(f"company:{c['company']}", "") if c.get("company") else ""})
    return page(request, "ui/queue.html.j2", actor=actor, items=items, units=sorted(labels.values()),
                categories=[node.label for node in state.taxonomy.categories.walk()],
                urgency=state.taxonomy.urgency.levels, types=state.taxonomy.appeal_types.names)


@router.post("/tickets/{ticket_id}/assign")
async def assign(ticket_id: int, request: Request, session: SessionDep, svc: TicketServiceDep, actor: UiReviewer):
    data = await form(request)
    by_label = {label: unit_id for unit_id, label in unit_labels(session).items()}
    primary = data.get("primary_unit", "").strip()
    if primary not in by_label:
        return RedirectResponse(f"/ui/queue?error={quote(f'工单 {ticket_id}：找不到承办单位“{primary}”')}",
                                status_code=303)
    co = []
    for key in ("department_unit", "company_unit"):
        name = data.get(key, "").strip()
        if name:
            if name not in by_label:
                return RedirectResponse(f"/ui/queue?error={quote(f'工单 {ticket_id}：找不到单位“{name}”')}",
                                        status_code=303)
            co.append(by_label[name])
    body = {"primary_unit_id": by_label[primary], "co_unit_ids": co}
    for key in ("category", "appeal_type"):
        if data.get(key, "").strip():
            body[key] = data[key].strip()
    if data.get("urgency", "").strip().isdigit():
        body["urgency"] = int(data["urgency"])
    try:
        svc.act(ticket_id, "assign", body, actor)
    except (TicketNotFound, IllegalTransition, NotPermitted, InvalidAction, Conflict) as exc:
        return RedirectResponse(f"/ui/queue?error={quote(f'工单 {ticket_id}：{exc}')}", status_code=303)
    done = f"工单 {ticket_id} 已派给 {primary}"
    return RedirectResponse(f"/ui/queue?flash={quote(done)}", status_code=303)


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket(ticket_id: int, request: Request, state: StateDep, svc: TicketServiceDep, actor: UiActor):
    try:
        t = svc.get(ticket_id)
    except TicketNotFound:
        return RedirectResponse(f"/ui/queue?error={quote(f'工单 {ticket_id} 不存在')}", status_code=303)
    if not svc.visible_to(t, actor):
        raise UiForbidden(actor.role, ("承办该工单的单位", "reviewer", "analyst", "callback"))
    view = view_for(actor.role)
    events = [(e, shown_payload(e.payload, view)) for e in svc.events_for(t, actor)]
    return page(request, "ui/ticket.html.j2", actor=actor, t=t, text=shown(f"{t.title} {t.text}", view),
                events=events, caller=(t.caller_name, t.caller_phone) if view.caller else None,
                names={u.id: u.name for u in state.taxonomy.units})


@router.get("/rankings", response_class=HTMLResponse)
def rankings(request: Request, state: StateDep, session: SessionDep, actor: UiActor, month: str | None = None,
             level: str = "street"):
    from serving.services.scores import monthly_scores, visible_scores

    month = month or datetime.now(state.taxonomy.timezone).strftime("%Y-%m")
    try:
        scores = visible_scores(monthly_scores(session, state.taxonomy, month, level), actor, level)
    except ValueError as exc:
        return page(request, "ui/rankings.html.j2", actor=actor, month=month, level=level, scores=[], error=str(exc))
    return page(request, "ui/rankings.html.j2", actor=actor, month=month, level=level, scores=scores)


@router.get("/hotspots", response_class=HTMLResponse)
def hotspots(request: Request, state: StateDep, session: SessionDep, actor: UiAnalyst, days: int = 7):
    from serving.analytics.alerts import alerts_between
    from serving.analytics.hotspots import find_hotspots
    from serving.analytics.sources import appeals_from_store

    days = min(max(days, 1), 92)
    tz = state.taxonomy.timezone
    end = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    start = end - timedelta(days=days)
    found = find_hotspots(appeals_from_store(session, start, end), top=20)
    alerts = alerts_between(session, state.taxonomy, start.date(), end.date(), "street")
    return page(request, "ui/hotspots.html.j2", actor=actor, hotspots=found, alerts=alerts, first=start.date(),
                last=(end - timedelta(days=1)).date(), names={u.id: u.name for u in state.taxonomy.units})
