"""Where appeals for analysis come from: the store (tickets) or an offline file (CSV/JSONL)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.domain.privacy import mask

from serving.analytics.hotspots import Appeal
from serving.store.models import TicketRow, UnitRow


def appeals_from_store(session: Session, start: datetime, end: datetime, category: str | None = None) -> list[Appeal]:
    """The period's tickets as appeals, their texts masked (``serving.domain.privacy``: hotspots, alerts,
    the ledger and reports never carry a citizen's numbers); ``category`` (a path at any level) keeps those
    filed under it."""
    names = dict(session.execute(select(UnitRow.id, UnitRow.name)).all())
    query = select(TicketRow.id, TicketRow.title, TicketRow.text, TicketRow.received_at, TicketRow.street_id,
                   TicketRow.category).where(TicketRow.received_at >= start, TicketRow.received_at < end)
    if category:
        query = query.where((TicketRow.category == category) | TicketRow.category.startswith(category + "/"))
    return [Appeal(id=str(r.id), title=mask(r.title), text=mask(r.text), at=r.received_at,
                   place=names.get(r.street_id) if r.street_id else None, category=r.category)
            for r in session.execute(query).all()]


def appeals_from_file(path: str | Path) -> tuple[list[Appeal], int]:
    """Appeals with a parseable time (``created_at`` or ``received_at``); returns them and how many rows
    were skipped for having none, so the caller can say so rather than drop them silently."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: file not found")
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    elif path.suffix.lower() in (".jsonl", ".json"):
        frame = pd.read_json(path, lines=True, dtype=False)
    else:
        raise ValueError(f"{path}: use .csv or .jsonl")
    time_column = next((c for c in ("created_at", "received_at") if c in frame.columns), None)
    for needed in ("id", "title", "text"):
        if needed not in frame.columns:
            raise ValueError(f"{path}: missing column {needed!r}")
    if time_column is None:
        raise ValueError(f"{path}: missing column 'created_at' (or 'received_at')")
    appeals, skipped = [], 0
    likes = frame["likes"] if "likes" in frame.columns else None
    for i, row in frame.iterrows():
        try:
            at = datetime.fromisoformat(str(row[time_column]))
        except ValueError:
            skipped += 1
            continue
        like = int(float(likes[i])) if likes is not None and str(likes[i]).strip() not in ("", "nan") else 0
        appeals.append(Appeal(id=str(row["id"]), title=str(row["title"] or ""), text=str(row["text"] or ""), at=at,
                              likes=like))
    return appeals, skipped
