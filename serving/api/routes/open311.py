"""Open311 GeoReport v2 (``/open311/v2``): services from the category tree, requests as tickets.

JSON only (``.json`` paths). The response models document the spec's shapes; the handlers answer
``JSONResponse`` so that errors keep the spec's list form. The key is the request's ``api_key`` (form field or query parameter, as the
spec has it) or the usual ``Authorization: Bearer``. Errors are the spec's ``[{"code", "description"}]``:
400 bad input, 401 no or unknown key, 403 a role that may not, 404 unknown service or request. What the
rules are: ``serving.services.open311``.
"""

from __future__ import annotations

from typing import Any, Callable
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from serving.domain.enums import Role
from serving.domain.workflow import Actor
from serving.model.appeals import AppealInput, AppealInputError
from serving.services.keys import authenticate
from serving.services.open311 import (Catalogue, Open311Error, catalogue_of, definition, find_requests,
                                      parse_datetime, request_out)
from serving.services.tickets import TicketService
from serving.store.models import MAX_ID

router = APIRouter(prefix="/open311/v2", tags=["open311"])


class Service(BaseModel):
    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: str
    keywords: str
    group: str


class ServiceDefinition(BaseModel):
    service_code: str
    attributes: list[dict]


class Created(BaseModel):
    service_request_id: str
    service_notice: str | None
    account_id: str | None


class ServiceRequest(BaseModel):
    service_request_id: str
    status: str = Field(description="open, or closed once the unit has answered")
    status_notes: str | None
    service_name: str | None
    service_code: str | None
    description: str | None = Field(description="masked as analysts see it")
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: str | None
    updated_datetime: str | None
    expected_datetime: str | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    lat: float | None
    long: float | None
    media_url: str | None

WRITERS = (Role.INTAKE, Role.ADMIN)
EVERYONE = Actor(role=Role.ADMIN)  # finds the request; whether the caller may read it is asked after
ERROR = {"description": "The spec's error list", "content": {"application/json": {"example": [
    {"code": 400, "description": "description: required"}]}}}


def _catalogue(request: Request) -> Catalogue:
    return catalogue_of(request.app.state.jiesu.taxonomy.categories)


def _key(request: Request, form: Any = None) -> str | None:
    key = (form.get("api_key") if form is not None else None) or request.query_params.get("api_key")
    if not key:
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header.lower().startswith("bearer ") else None
    return key or None


def _actor(session, key: str | None, roles: tuple[str, ...] | None = None):
    if not key:
        raise Open311Error(401, "api_key is required")
    actor = authenticate(session, key)
    if actor is None:
        raise Open311Error(401, "api_key is unknown, revoked or expired")
    if roles is not None and actor.role not in roles:
        raise Open311Error(403, f"the {actor.role} role may not create requests (needs intake)")
    return actor


async def _answer(work: Callable[[], Any], status_code: int = 200) -> JSONResponse:
    try:
        return JSONResponse(await run_in_threadpool(work), status_code=status_code)
    except Open311Error as exc:
        return JSONResponse(exc.body(), status_code=exc.code)


@router.get("/services.json", summary="The services: the category tree's leaves", response_model=list[Service])
async def services(request: Request) -> JSONResponse:
    catalogue = _catalogue(request)
    return await _answer(catalogue.services)


@router.get("/services/{service_code}.json", summary="A service's definition (no extra attributes)",
            response_model=ServiceDefinition, responses={404: ERROR})
async def service_definition(request: Request, service_code: str) -> JSONResponse:
    catalogue = _catalogue(request)
    return await _answer(lambda: definition(catalogue, service_code))


@router.post("/requests.json", status_code=201, summary="Create a request (form-encoded, as the spec has it)",
             response_model=list[Created], responses={400: ERROR, 401: ERROR, 403: ERROR})
async def create_request(request: Request) -> JSONResponse:
    try:  # application/x-www-form-urlencoded, as the spec has it
        form = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return JSONResponse(Open311Error(400, "the body is not a UTF-8 form (application/x-www-form-urlencoded)").body(),
                            status_code=400)
    state, catalogue = request.app.state.jiesu, _catalogue(request)
    fields = {k: v[0] for k, v in form.items() if v}

    def work():
        with state.sessions() as session:
            actor = _actor(session, _key(request, fields), WRITERS)
            node = None
            if fields.get("service_code"):
                try:
                    node = catalogue.find(fields["service_code"])
                except Open311Error as exc:
                    raise Open311Error(400, exc.description) from None
            if not (fields.get("description") or "").strip():
                raise Open311Error(400, "description: required (what the citizen reports)")
            address = fields.get("address_string") or _point(fields.get("lat"), fields.get("long"))
            name = " ".join(x for x in (fields.get("last_name"), fields.get("first_name")) if x) or None
            appeal = AppealInput(text=fields["description"], title=node.name if node else "", channel="open311",
                                 address=address, caller_name=name, caller_phone=fields.get("phone") or None)
            svc = TicketService(session, state.taxonomy, state.predictor, state.settings.review_threshold)
            try:
                ticket, _ = svc.intake(appeal, actor, chosen=node)
            except AppealInputError as exc:
                raise Open311Error(400, f"{_field(exc.field)}: {exc.reason}") from None
            notice = (f"受理编号 {ticket.id}；应于 {ticket.respond_by.isoformat(timespec='minutes')} 前响应"
                      if ticket.respond_by else f"受理编号 {ticket.id}；待人工分派")
            return [{"service_request_id": str(ticket.id), "service_notice": notice, "account_id": None}]

    return await _answer(work, status_code=201)


def _field(name: str | None) -> str:
    return {"text": "description", "title": "service_code", "caller_phone": "phone", "caller_name": "first_name",
            "address": "address_string"}.get(name or "", name or "request")


def _point(lat: str | None, long: str | None) -> str | None:
    if not lat and not long:
        return None
    try:
        y, x = float(lat or ""), float(long or "")
    except ValueError:
        raise Open311Error(400, "lat and long: give both, as decimal degrees") from None
    if not (-90 <= y <= 90 and -180 <= x <= 180):
        raise Open311Error(400, "lat and long: out of range")
    return f"{y:.6f},{x:.6f}"


def _ids(value: str | None) -> list[int] | None:
    if not value:
        return None
    out = []
    for part in value.split(","):
        part = part.strip()
        if not part.isdigit() or not 0 < int(part) <= MAX_ID:
            raise Open311Error(400, f"service_request_id: {part!r} is not a request number")
        out.append(int(part))
    return out


def _list(value: str | None) -> list[str] | None:
    return [p.strip() for p in value.split(",") if p.strip()] if value else None


@router.get("/requests.json", summary="Requests: by id, service, dates and status", response_model=list[ServiceRequest],
            responses={400: ERROR, 401: ERROR})
async def list_requests(request: Request) -> JSONResponse:
    state, catalogue = request.app.state.jiesu, _catalogue(request)
    q = request.query_params

    def work():
        if any("\x00" in v for v in q.values()):
            raise Open311Error(400, "a query parameter holds a NUL character")
        with state.sessions() as session:
            actor = _actor(session, _key(request))
            found = find_requests(session, catalogue, actor, ids=_ids(q.get("service_request_id")),
                                  codes=_list(q.get("service_code")), start=parse_datetime("start_date", q.get("start_date")),
                                  end=parse_datetime("end_date", q.get("end_date")), statuses=_list(q.get("status")))
            return [request_out(t, state.taxonomy, catalogue) for t in found]

    return await _answer(work)


@router.get("/requests/{service_request_id}.json", summary="One request", response_model=list[ServiceRequest],
            responses={401: ERROR, 403: ERROR, 404: ERROR})
async def get_request(request: Request, service_request_id: str) -> JSONResponse:
    state, catalogue = request.app.state.jiesu, _catalogue(request)

    def work():
        with state.sessions() as session:
            actor = _actor(session, _key(request))
            if not service_request_id.isdigit() or not 0 < int(service_request_id) <= MAX_ID:
                raise Open311Error(404, f"request {service_request_id!r} not found")
            svc = TicketService(session, state.taxonomy, None, None)
            found = find_requests(session, catalogue, EVERYONE, ids=[int(service_request_id)])
            if not found:
                raise Open311Error(404, f"request {service_request_id} not found")
            if not svc.visible_to(found[0], actor):
                raise Open311Error(403, f"request {service_request_id} is not visible to this key")
            return [request_out(found[0], state.taxonomy, catalogue)]

    return await _answer(work)
