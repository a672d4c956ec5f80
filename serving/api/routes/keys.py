"""API keys (admin): list, create (the key is shown once), revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving.api.deps import Admin, SessionDep
from serving.api.schemas import require_timezone
from serving.services.keys import KeyError_, issue_key, key_record, list_keys, revoke_key

router = APIRouter(prefix="/v1/keys", tags=["operations"])


class KeyOut(BaseModel):
    id: int
    role: str
    unit_id: str | None
    label: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    state: Literal["active", "expired", "revoked"]


class NewKeyOut(KeyOut):
    key: str = Field(description="The key itself: shown this once, only its hash is stored")


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["intake", "unit", "reviewer", "callback", "analyst", "admin"]
    unit_id: str | None = Field(None, max_length=64, description="For a unit key: the unit it acts for")
    label: str | None = Field(None, max_length=100, pattern=r"^[^\x00]*$")
    expires_at: datetime | None = None

    _aware = field_validator("expires_at")(classmethod(lambda cls, v: require_timezone(v)))


@router.get("", response_model=list[KeyOut], summary="API keys (admin); no secret is shown or stored")
def keys(session: SessionDep, actor: Admin, include_revoked: bool = False) -> list[dict]:
    return [key_record(row) for row in list_keys(session, include_revoked)]


@router.post("", status_code=201, response_model=NewKeyOut, summary="Create an API key (admin)")
def new_key(body: KeyIn, session: SessionDep, actor: Admin) -> dict:
    try:
        key, row = issue_key(session, body.role, body.unit_id, label=body.label, expires_at=body.expires_at)
    except KeyError_ as exc:
        field = str(exc).split(":", 1)[0] if str(exc).startswith("expires_at") else "unit_id"
        raise HTTPException(422, {"message": str(exc), "field": field}) from None
    return {**key_record(row), "key": key}


@router.post("/{key_id}/revoke", response_model=KeyOut, summary="Revoke an API key (admin): refused at once")
def revoke(key_id: Annotated[int, Path(ge=1, le=2**62)], session: SessionDep, actor: Admin) -> dict:
    try:
        return key_record(revoke_key(session, key_id))
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
