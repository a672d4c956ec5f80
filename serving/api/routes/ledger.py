"""城市问题台账 over HTTP: sync from recurring hotspots, list, close."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from serving.api.deps import Analyst, CurrentActor, Reviewer, SessionDep, StateDep
from serving.api.params import period
from serving.api.schemas import LedgerEntryOut, LedgerSyncOut
from serving.services import ledger as ledger_service
from serving.services.ledger import ReasonRequired, close_entry, entries_by_id, sync_ledger
from serving.store.models import LedgerEntryRow

router = APIRouter(prefix="/v1/ledger", tags=["analytics"])


def entry_out(entry: LedgerEntryRow, state) -> dict:
    unit = state.taxonomy.units.get(entry.owner_unit_id) if entry.owner_unit_id else None
    return {"id": entry.id, "title": entry.title, "place": entry.place, "owner_unit_id": entry.owner_unit_id,
            "owner_unit": unit.name if unit else entry.owner_unit_id, "status": entry.status,
            "opened_at": entry.opened_at, "closed_at": entry.closed_at, "note": entry.note,
            "ticket_ids": entry.ticket_ids, "history": entry.history or []}


class SyncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(min_length=1, max_length=2000)
    reason: str | None = Field(None, max_length=2000, description="Needed when member tickets are open and overdue")


@router.post("/sync", response_model=LedgerSyncOut, summary="Open or extend entries from the recurring hotspots of a period")
def sync(body: SyncIn, state: StateDep, session: SessionDep, actor: Analyst):
    start, end = period(body.start, body.end, state.taxonomy.timezone)
    ids = sync_ledger(session, state.taxonomy, start, end, datetime.now(timezone.utc))
    return {"entries": [entry_out(e, state) for e in entries_by_id(session, ids)]}


@router.get("", response_model=list[LedgerEntryOut], summary="Ledger entries")
def list_entries(state: StateDep, session: SessionDep, actor: CurrentActor,
                 status: Literal["open", "closed"] | None = None,
                 owner_unit_id: Annotated[str | None, Query(max_length=64)] = None):
    if actor.role == "unit":
        owner_unit_id = actor.unit_id
    return [entry_out(e, state) for e in ledger_service.list_entries(session, status, owner_unit_id)]


@router.post("/{entry_id}/close", response_model=LedgerEntryOut, summary="Close an entry (销号) with a note")
def close(entry_id: Annotated[int, Path(ge=1, le=2**62)], body: CloseIn, state: StateDep, session: SessionDep,
          actor: Reviewer):
    try:
        return entry_out(close_entry(session, entry_id, body.note, datetime.now(timezone.utc), body.reason,
                                     actor.name), state)
    except LookupError:
        raise HTTPException(404, f"ledger entry {entry_id} not found") from None
    except ReasonRequired as exc:
        raise HTTPException(422, {"message": str(exc), "field": "reason"}) from None
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
