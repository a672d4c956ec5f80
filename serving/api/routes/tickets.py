"""Intake (POST /v1/appeals), ticket reading and the actions on a ticket: one route per action, each
with its own body (``serving.domain.actions``), so the OpenAPI says what every action takes.

(No ``from __future__ import annotations`` here: the action routes are made in a loop, and FastAPI reads
their body types from the annotations at definition time.)"""

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response

from serving.api.deps import CurrentActor, IntakeActor, StateDep, TicketServiceDep
from pydantic import Field, create_model

from serving.api.schemas import AppealIn, TicketOut, require_timezone
from serving.api.shape import ticket_out
from serving.model.appeals import AppealInputError
from serving.domain.actions import BODIES
from serving.domain.workflow import Actor, IllegalTransition, NotPermitted
from serving.services.tickets import Conflict, InvalidAction, TicketNotFound, now
from serving.domain.enums import Status
from serving.domain.privacy import view_for

router = APIRouter(prefix="/v1", tags=["tickets"])
TicketId = Annotated[int, Path(ge=1, le=2**62, description="The ticket number")]


@router.post("/appeals", status_code=201, response_model=TicketOut, summary="Receive an appeal (受理)")
def receive_appeal(body: AppealIn, actor: IntakeActor, state: StateDep, svc: TicketServiceDep, response: Response,
                   request: Request,
                   idempotency_key: Annotated[str | None, Header(max_length=180)] = None) -> TicketOut:
    if body.at is not None and actor.role != "admin":
        raise HTTPException(403, {"message": "only the admin (import) role may set the time of a record",
                                  "field": "at"})
    limit = (body.at or now()) + timedelta(seconds=state.settings.clock_skew_s)
    if body.received_at is not None and body.received_at > limit:
        raise HTTPException(422, {"message": f"received_at: {body.received_at.isoformat()} is in the future",
                                  "field": "received_at"})
    try:
        ticket, created = svc.intake(body.appeal(), actor, idempotency_key, at=body.at)
    except Conflict as exc:
        raise HTTPException(409, f"Idempotency-Key: {exc}") from None
    except AppealInputError as exc:
        raise HTTPException(422, {"message": str(exc), "field": exc.field}) from None
    if not created:
        response.status_code = 200
    else:
        request.app.state.metrics.record_ticket(ticket)
    return ticket_out(ticket, state.taxonomy, view=view_for(actor.role))


@router.get("/tickets/{ticket_id}", response_model=TicketOut, summary="A ticket with its events")
def get_ticket(ticket_id: TicketId, svc: TicketServiceDep, actor: CurrentActor) -> TicketOut:
    try:
        ticket = svc.get(ticket_id)
    except TicketNotFound:
        raise HTTPException(404, f"ticket {ticket_id} not found") from None
    if not svc.visible_to(ticket, actor):
        raise HTTPException(403, f"ticket {ticket_id} is not visible to this key"
                                 + (f" (unit {actor.unit_id})" if actor.unit_id else ""))
    return ticket_out(ticket, svc.taxonomy, with_events=True, view=view_for(actor.role),
                      events=svc.events_for(ticket, actor))


@router.get("/tickets", response_model=list[TicketOut], summary="List tickets (overdue=true: 督办 list)")
def list_tickets(svc: TicketServiceDep, actor: CurrentActor,
                 status: Status | None = None,
                 unit_id: Annotated[str | None, Query(max_length=64)] = None, overdue: bool | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> list[TicketOut]:
    if actor.role == "unit":
        if unit_id and unit_id != actor.unit_id:
            raise HTTPException(403, f"unit_id: a unit key sees only its own tickets ({actor.unit_id})")
        unit_id = actor.unit_id
    received_by = actor.name if actor.role == "intake" else None  # the intake desk lists what it received
    tickets = svc.list(status=status, unit_id=unit_id, overdue=overdue, limit=limit, offset=offset,
                       received_by=received_by)
    return [ticket_out(t, svc.taxonomy, view=view_for(actor.role)) for t in tickets]


def _api_body(action: str, model):
    """The action's body as the API takes it: the domain's fields plus ``at`` and ``as_unit`` for imports."""
    return create_model(
        f"{model.__name__}Body", __base__=model, __doc__=model.__doc__,
        at=(datetime | None, Field(None, strict=False, description="Admin import only: when the action happened")),
        as_unit=(str | None, Field(None, max_length=64, description="Admin import only: the unit that took a "
                                                                     "unit's action")))


def _action_route(action: str, model) -> None:
    body_model = _api_body(action, model)

    def act(ticket_id: TicketId, body: body_model, svc: TicketServiceDep, actor: CurrentActor) -> TicketOut:
        if body.at is not None:
            if actor.role != "admin":
                raise HTTPException(403, {"message": "only the admin (import) role may set the time of an action",
                                          "field": "at"})
            try:
                require_timezone(body.at)
            except ValueError as exc:
                raise HTTPException(422, {"message": f"at: {exc}", "field": "at"}) from None
        payload = body.model_dump(exclude={"at", "as_unit"}, exclude_unset=True)
        if body.as_unit is not None:
            if actor.role != "admin":
                raise HTTPException(403, {"message": "only the admin (import) role may act as a unit",
                                          "field": "as_unit"})
            actor = Actor(role="unit", unit_id=body.as_unit, key_id=actor.key_id)
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
        return ticket_out(ticket, svc.taxonomy, with_events=True, view=view_for(actor.role),
                          events=svc.events_for(ticket, actor))

    act.__name__ = f"act_{action.replace('-', '_')}"
    router.post(f"/tickets/{{ticket_id}}/{action}", response_model=TicketOut, summary=(model.__doc__ or action).split(":")[0],
                name=act.__name__)(act)


for _action, _model in BODIES.items():
    _action_route(_action, _model)
