"""城市问题台账: recurring hotspots become ledger entries with an owner, a status and their tickets.

Rules (thresholds in the profile's ``groups.yaml``):
- a hotspot recurs when it has at least ``ledger_min_size`` appeals spread over at least
  ``ledger_recur_days`` days;
- a recurring hotspot that shares tickets with an open entry adds its new tickets to that entry;
  otherwise it opens an entry, owned by the unit most of its tickets were sent to as primary;
- an entry stays open until a reviewer closes it (销号), with a note.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.analytics.hotspots import find_hotspots
from serving.analytics.sources import appeals_from_store
from serving.store.models import LedgerEntryRow, TicketRow
from taxonomy import Taxonomy


def sync_ledger(session: Session, taxonomy: Taxonomy, start: datetime, end: datetime, at: datetime) -> list[int]:
    """Open or extend ledger entries from the recurring hotspots of [start, end); returns the entry ids."""
    rules = taxonomy.groups
    hotspots = find_hotspots(appeals_from_store(session, start, end), min_size=rules.ledger_min_size)
    recurring = [h for h in hotspots if h.last - h.first >= timedelta(days=rules.ledger_recur_days)]
    open_entries = session.execute(select(LedgerEntryRow).where(LedgerEntryRow.status == "open")).scalars().all()
    touched = []
    for hotspot in recurring:
        ids = [int(t) for t in hotspot.ticket_ids]
        entry = next((e for e in open_entries if set(e.ticket_ids) & set(ids)), None)
        if entry is None:
            primaries = Counter(session.execute(select(TicketRow.primary_unit_id).where(
                TicketRow.id.in_(ids), TicketRow.primary_unit_id.is_not(None))).scalars())
            entry = LedgerEntryRow(title=hotspot.title, place=hotspot.place, status="open", opened_at=at,
                                   owner_unit_id=primaries.most_common(1)[0][0] if primaries else None,
                                   ticket_ids=[])
            session.add(entry)
            open_entries.append(entry)
        entry.ticket_ids = sorted(set(entry.ticket_ids) | set(ids))
        session.flush()
        touched.append(entry.id)
    session.commit()
    return touched


def close_entry(session: Session, entry_id: int, note: str, at: datetime) -> LedgerEntryRow:
    entry = session.get(LedgerEntryRow, entry_id)
    if entry is None:
        raise LookupError(entry_id)
    if entry.status == "closed":
        raise ValueError(f"ledger entry {entry_id} is already closed")
    entry.status, entry.closed_at, entry.note = "closed", at, note
    session.commit()
    return entry
