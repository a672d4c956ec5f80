"""Query parameters shared by routes: a moment given as a date (``2026-11-01``: that day's start) or a time
without a zone is read in the profile's time zone; a time with a zone is taken as it is."""

from __future__ import annotations

from datetime import datetime, tzinfo

from fastapi import HTTPException


def local(value: datetime, tz: tzinfo) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def period(start: datetime, end: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    """``from``/``to`` in the profile's zone where they name none; ``to`` must come after ``from``."""
    start, end = local(start, tz), local(end, tz)
    if not 1900 <= start.year <= 2999 or not 1900 <= end.year <= 2999:
        raise HTTPException(422, {"message": "from/to: out of range (years 1900–2999)", "field": "from"})
    if end <= start:
        raise HTTPException(422, {"message": "to: must be after from", "field": "to"})
    return start, end
