"""城市问题台账: recurring hotspots become ledger entries with an owner, a status and their tickets.

Rules (thresholds in the profile's ``groups.yaml``):
- a hotspot recurs when it has at least ``ledger_min_size`` appeals spread over at least
  ``ledger_recur_days`` days;
- a recurring hotspot that shares tickets with an open entry adds its new tickets to that entry;
  otherwise it opens an entry, owned by the unit most of its tickets were sent to as primary;
- a recurring hotspot that shares tickets with a **closed** entry does not open another: a re-sync of the
  same tickets leaves it closed; only tickets received after the close reopen it, and the reopening is
  recorded in the entry's history with those tickets;
- an entry stays open until a reviewer closes it (销号), with a note; closing while member tickets are open
  and overdue needs a reason as well (why the problem is closed although units have not answered);
- every change of an entry is a line of its ``history`` (what, when, by whom, which tickets).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.analytics.hotspots import find_hotspots
from serving.analytics.sources import appeals_from_store
from serving.domain.enums import Status
from serving.store.models import MAX_ID, LedgerEntryRow, TicketRow
from taxonomy import Taxonomy


def sync_ledger(session: Session, taxonomy: Taxonomy, start: datetime, end: datetime, at: datetime) -> list[int]:
    """Open or extend ledger entries from the recurring hotspots of [start, end); returns the entry ids."""
    rules = taxonomy.groups
    hotspots = find_hotspots(appeals_from_store(session, start, end), min_size=rules.ledger_min_size)
    recurring = [h for h in hotspots if h.last - h.first >= timedelta(days=rules.ledger_recur_days)]
    entries = session.execute(select(LedgerEntryRow)).scalars().all()
    touched = []
    for hotspot in recurring:
        ids = {int(t) for t in hotspot.ticket_ids}
        entry = next((e for e in entries if e.status == "open" and set(e.ticket_ids) & ids), None) or \
            next((e for e in entries if set(e.ticket_ids) & ids), None)
        if entry is None:
            primaries = Counter(session.execute(select(TicketRow.primary_unit_id).where(
                TicketRow.id.in_(ids), TicketRow.primary_unit_id.is_not(None))).scalars())
            entry = LedgerEntryRow(title=hotspot.title, place=hotspot.place, status="open", opened_at=at,
                                   owner_unit_id=primaries.most_common(1)[0][0] if primaries else None,
                                   ticket_ids=[], history=[_line("opened", at, "system", sorted(ids))])
            session.add(entry)
            entries.append(entry)
        new = ids - set(entry.ticket_ids)
        if entry.status == "closed":
            new = set(session.execute(select(TicketRow.id).where(
                TicketRow.id.in_(new), TicketRow.received_at > entry.closed_at)).scalars()) if new else set()
            if not new:
                continue  # the same problem, already closed: the re-sync does not reopen it
            entry.status, entry.closed_at = "open", None
            entry.history = [*entry.history, _line("reopened", at, "system", sorted(new))]
        elif new and entry.history:
            entry.history = [*entry.history, _line("extended", at, "system", sorted(new))]
        entry.ticket_ids = sorted(set(entry.ticket_ids) | ids)
        session.flush()
        touched.append(entry.id)
    session.commit()
    return touched


def _line(kind: str, at: datetime, actor: str, ticket_ids: list[int] | None = None, **extra) -> dict:
    return {"kind": kind, "at": at.isoformat(), "actor": actor,
            **({"ticket_ids": ticket_ids} if ticket_ids else {}), **extra}


class ReasonRequired(ValueError):
    """Closing an entry whose tickets are open and overdue needs a reason."""


def close_entry(session: Session, entry_id: int, note: str, at: datetime, reason: str | None = None,
                actor: str = "reviewer") -> LedgerEntryRow:
    entry = session.get(LedgerEntryRow, entry_id) if 0 < entry_id <= MAX_ID else None
    if entry is None:
        raise LookupError(entry_id)
    if entry.status == "closed":
        raise ValueError(f"ledger entry {entry_id} is already closed")
    overdue = session.execute(select(TicketRow.id).where(
        TicketRow.id.in_(entry.ticket_ids), TicketRow.status.in_([Status.DISPATCHED, Status.ACCEPTED]),
        ((TicketRow.status == Status.DISPATCHED) & (TicketRow.respond_by < at)) | (TicketRow.resolve_by < at))
    ).scalars().all()
    if overdue and not (reason or "").strip():
        raise ReasonRequired(f"reason: tickets {', '.join(map(str, sorted(overdue)))} of this entry are open and "
                             "overdue; say why it is closed anyway")
    entry.status, entry.closed_at, entry.note = "closed", at, note
    entry.history = [*(entry.history or []), _line("closed", at, actor, note=note,
                                                   **({"reason": reason.strip(), "overdue_ticket_ids": sorted(overdue)}
                                                      if overdue else {}))]
    session.commit()
    return entry


def list_entries(session: Session, status: str | None = None, owner_unit_id: str | None = None) -> list[LedgerEntryRow]:
    """Entries in the order they were opened, optionally one status and one owning unit."""
    query = select(LedgerEntryRow).order_by(LedgerEntryRow.id)
    if status:
        query = query.where(LedgerEntryRow.status == status)
    if owner_unit_id:
        query = query.where(LedgerEntryRow.owner_unit_id == owner_unit_id)
    return list(session.execute(query).scalars())


def entries_by_id(session: Session, ids: list[int]) -> list[LedgerEntryRow]:
    """The entries with these ids, each once, in the order given."""
    return [session.get(LedgerEntryRow, i) for i in dict.fromkeys(ids)]
