"""Dependencies whose typed aliases let a route's signature say what it needs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from serving.api.state import ServiceState
from serving.domain.workflow import Actor
from serving.services.keys import authenticate
from serving.services.tickets import TicketService

bearer = HTTPBearer(auto_error=False, description="An API key: Authorization: Bearer <key>")


def get_state(request: Request) -> ServiceState:
    return request.app.state.jiesu


StateDep = Annotated[ServiceState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    with state.sessions() as session:
        state.refresh_units(session)  # a unit imported or merged elsewhere is seen within a second
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_actor(session: SessionDep,
              credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Actor:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(401, "missing API key: send Authorization: Bearer <key>",
                            headers={"WWW-Authenticate": "Bearer"})
    actor = authenticate(session, credentials.credentials)
    if actor is None:
        raise HTTPException(401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    return actor


CurrentActor = Annotated[Actor, Depends(get_actor)]


def require(actor: Actor, *roles: str) -> None:
    if actor.role != "admin" and actor.role not in roles:
        raise HTTPException(403, f"the {actor.role} role may not do this (needs: {', '.join(roles)})")


def role(*roles: str) -> Callable[[Actor], Actor]:
    """A dependency that lets through the calling key when its role is one of ``roles`` (or admin)."""
    def check(actor: CurrentActor) -> Actor:
        require(actor, *roles)
        return actor

    check.__name__ = "role_" + "_".join(roles)
    return check


IntakeActor = Annotated[Actor, Depends(role("intake"))]
Reviewer = Annotated[Actor, Depends(role("reviewer"))]
Analyst = Annotated[Actor, Depends(role("analyst", "reviewer"))]  # reviewers read the analyses too
Admin = Annotated[Actor, Depends(role("admin"))]


def ticket_service(state: StateDep, session: SessionDep) -> TicketService:
    """The ticket service for a request: reading, actions, the review queue."""
    return TicketService(session, state.taxonomy, state.predictor, state.settings.review_threshold)


TicketServiceDep = Annotated[TicketService, Depends(ticket_service)]
