"""GET /v1/units: the unit registry."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from serving.api.deps import CurrentActor, SessionDep
from serving.store.models import UnitRow

router = APIRouter(prefix="/v1", tags=["units"])


class UnitOut(BaseModel):
    id: str
    name: str
    kind: str
    district_code: str | None
    department_id: str | None
    service: str | None


@router.get("/units", response_model=list[UnitOut], summary="Units that can be dispatched to")
def list_units(session: SessionDep, actor: CurrentActor,
               kind: Literal["street", "district", "department", "company"] | None = None,
               district_code: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None) -> list[UnitOut]:
    query = select(UnitRow).where(UnitRow.active.is_(True)).order_by(UnitRow.id)
    if kind:
        query = query.where(UnitRow.kind == kind)
    if district_code:
        query = query.where(UnitRow.district_code == district_code)
    return [UnitOut(id=u.id, name=u.name, kind=u.kind, district_code=u.district_code, department_id=u.department_id,
                    service=u.service) for u in session.execute(query).scalars()]
