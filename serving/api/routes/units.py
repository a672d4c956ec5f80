"""The unit registry: list it; an admin imports streets and merges units, and dispatch and place
resolution see the change at once."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from serving.api.deps import Admin, CurrentActor, SessionDep, StateDep
from serving.api.schemas import ImportOut
from serving.services.units import active_units, import_street_records, merge_unit
from serving.store.models import UnitRow
from taxonomy.units import StreetRecord

router = APIRouter(prefix="/v1", tags=["units"])


class UnitOut(BaseModel):
    id: str
    name: str
    kind: str
    district_code: str | None
    department_id: str | None
    service: str | None
    active: bool = True
    merged_into: str | None = None
    history: list[dict] = Field(default_factory=list)


class StreetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^\d{9,12}$", description="The official division code")
    name: str = Field(min_length=2, max_length=100)
    district_code: str = Field(pattern=r"^\d{6}$")


class ImportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    streets: list[StreetIn] = Field(min_length=1, max_length=5000)


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    into: str = Field(min_length=1, max_length=64, description="The unit that takes over")


def unit_out(u: UnitRow) -> UnitOut:
    return UnitOut(id=u.id, name=u.name, kind=u.kind, district_code=u.district_code, department_id=u.department_id,
                   service=u.service, active=u.active, merged_into=u.merged_into, history=u.history or [])


@router.get("/units", response_model=list[UnitOut], summary="Units that can be dispatched to")
def list_units(session: SessionDep, actor: CurrentActor,
               kind: Literal["street", "district", "department", "company"] | None = None,
               district_code: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None) -> list[UnitOut]:
    return [unit_out(u) for u in active_units(session, kind, district_code)]


@router.post("/units/import", response_model=ImportOut, summary="Add or rename streets from an official list (admin)")
def import_streets_route(body: ImportIn, state: StateDep, session: SessionDep, actor: Admin) -> dict:
    districts = {u.district_code for u in state.taxonomy.units.of_kind("district")}
    for i, street in enumerate(body.streets):
        if street.district_code not in districts:
            raise HTTPException(422, {"message": f"streets.{i}.district_code: {street.district_code} is not a district "
                                                 "of the profile", "field": f"streets.{i}.district_code"})
    counts = import_street_records(session, [StreetRecord(s.code, s.name, s.district_code) for s in body.streets])
    state.refresh_units(session, force=True)
    return counts


@router.post("/units/{unit_id}/merge", response_model=UnitOut, summary="Merge a unit into another (admin)")
def merge(unit_id: Annotated[str, Path(max_length=64)], body: MergeIn, state: StateDep, session: SessionDep,
          actor: Admin) -> UnitOut:
    try:
        survivor = merge_unit(session, unit_id, body.into)
    except LookupError:
        raise HTTPException(404, f"unit {unit_id} not found") from None
    except ValueError as exc:
        raise HTTPException(422, {"message": str(exc), "field": "into"}) from None
    state.refresh_units(session, force=True)
    return unit_out(survivor)
