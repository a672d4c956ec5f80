"""Intake (POST /v1/appeals), ticket reading and the actions on a ticket."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response

from serving.api.deps import CurrentActor, SessionDep, StateDep, require
from serving.api.schemas import ActionBody, AppealIn, TicketOut
from serving.api.shape import ticket_out
from serving.model.appeals import AppealInputError
from serving.domain.workflow import RULES, Actor, IllegalTransition, NotPermitted
from serving.services.tickets import Conflict, Intake, InvalidAction, TicketNotFound, TicketService
from serving.domain.enums import Status

router = APIRouter(prefix="/v1", tags=["tickets"])
Action = Literal[tuple(RULES)]  # type: ignore[valid-type]
TicketId = Annotated[int, Path(ge=1, le=2**62, description="The ticket number")]


def service(state, session) -> TicketService:
    if state.predictor is None:
        raise HTTPException(503, f"no model is loaded: {state.model_error or 'set JIESU_MODEL_PATH'}")
    return TicketService(session, state.taxonomy, state.predictor, state.settings.review_threshold)


@router.post("/appeals", status_code=201, response_model=TicketOut, summary="Receive an appeal (受理)")
def receive_appeal(body: AppealIn, state: StateDep, session: SessionDep, actor: CurrentActor, response: Response,
                   request: Request,
                   idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> TicketOut:
    require(actor, "intake")
    if body.at is not None and actor.role != "admin":
        raise HTTPException(403, "at: only the admin (import) role may set the time of a record")
    intake = Intake(text=body.text, title=body.title or "", channel=body.channel, received_at=body.received_at,
                    address=body.address, caller_name=body.caller.name if body.caller else None,
                    caller_phone=body.caller.phone if body.caller else None)
    try:
        ticket, created = service(state, session).intake(intake, actor, idempotency_key, at=body.at)
    except Conflict as exc:
        raise HTTPException(409, f"Idempotency-Key: {exc}") from None
    except AppealInputError as exc:
        raise HTTPException(422, {"message": str(exc), "field": exc.field}) from None
    if not created:
        response.status_code = 200
    else:
        request.app.state.metrics.record_ticket(ticket)
    return ticket_out(ticket, state.taxonomy)


@router.get("/tickets/{ticket_id}", response_model=TicketOut, summary="A ticket with its events")
def get_ticket(ticket_id: TicketId, state: StateDep, session: SessionDep, actor: CurrentActor) -> TicketOut:
    svc = TicketService(session, state.taxonomy, state.predictor, state.settings.review_threshold)
    try:
        ticket = svc.get(ticket_id)
    except TicketNotFound:
        raise HTTPException(404, f"ticket {ticket_id} not found") from None
    if not svc.visible_to(ticket, actor):
        raise HTTPException(403, f"ticket {ticket_id} is not with unit {actor.unit_id}")
    return ticket_out(ticket, state.taxonomy, with_events=True)


@router.get("/tickets", response_model=list[TicketOut], summary="List tickets (overdue=true: 督办 list)")
def list_tickets(state: StateDep, session: SessionDep, actor: CurrentActor,
                 status: Status | None = None,
                 unit_id: Annotated[str | None, Query(max_length=64)] = None, overdue: bool | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> list[TicketOut]:
    if actor.role == "unit":
        if unit_id and unit_id != actor.unit_id:
            raise HTTPException(403, f"unit_id: a unit key sees only its own tickets ({actor.unit_id})")
        unit_id = actor.unit_id
    svc = TicketService(session, state.taxonomy, state.predictor, state.settings.review_threshold)
    tickets = svc.list(status=status, unit_id=unit_id, overdue=overdue, limit=limit, offset=offset)
    return [ticket_out(t, state.taxonomy) for t in tickets]


@router.post("/tickets/{ticket_id}/{action}", response_model=TicketOut, summary="Act on a ticket")
def act(ticket_id: TicketId, action: Action, body: ActionBody, state: StateDep, session: SessionDep,
        actor: CurrentActor) -> TicketOut:
    if body.at is not None and actor.role != "admin":
        raise HTTPException(403, "at: only the admin (import) role may set the time of an action")
    payload = body.model_dump(exclude={"at", "as_unit"})
    if body.as_unit is not None:
        if actor.role != "admin":
            raise HTTPException(403, "as_unit: only the admin (import) role may act as a unit")
        # importing history: the admin records what a unit did, as that unit
        actor = Actor(role="unit", unit_id=body.as_unit, key_id=actor.key_id)
    svc = TicketService(session, state.taxonomy, state.predictor, state.settings.review_threshold)
    try:
        ticket = svc.act(ticket_id, action, payload, actor, at=body.at)
    except TicketNotFound:
        raise HTTPException(404, f"ticket {ticket_id} not found") from None
    except IllegalTransition as exc:
        raise HTTPException(409, {"message": str(exc), "status": exc.status}) from None
    except NotPermitted as exc:
        raise HTTPException(403, str(exc)) from None
    except InvalidAction as exc:
        raise HTTPException(422, {"message": str(exc), "field": exc.field}) from None
    except Conflict as exc:
        raise HTTPException(409, {"message": str(exc), "status": svc.get(ticket_id).status}) from None
    return ticket_out(ticket, state.taxonomy, with_events=True)
