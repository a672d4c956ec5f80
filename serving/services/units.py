"""The unit registry in the database: the profile's units are synced at start; official street lists
can be imported later (``jiesu units import``) without a code change."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from serving.store.models import UnitRow
from taxonomy import Taxonomy, Unit, import_streets


def _row(unit: Unit, source: str) -> dict:
    return {"id": unit.id, "name": unit.name, "kind": unit.kind, "district_code": unit.district_code,
            "department_id": unit.department_id, "service": unit.service, "source": source, "active": True}


def sync_units(session: Session, taxonomy: Taxonomy) -> int:
    """Insert or update every unit of the profile; returns how many rows changed."""
    changed = 0
    existing = {row.id: row for row in session.query(UnitRow).all()}
    for unit in taxonomy.units:
        values = _row(unit, "profile")
        row = existing.get(unit.id)
        if row is None:
            session.add(UnitRow(**values))
            changed += 1
        elif any(getattr(row, k) != v for k, v in values.items() if k != "source"):
            for key, value in values.items():
                if key != "source":
                    setattr(row, key, value)
            changed += 1
    session.commit()
    return changed


def import_units(session: Session, path: str | Path, taxonomy: Taxonomy) -> int:
    """Import an official street list (see ``taxonomy.import_streets`` for the formats)."""
    codes = [u.district_code for u in taxonomy.units.of_kind("district")]
    count = 0
    for street in import_streets(path, codes):
        unit = Unit(id=f"street:{street.code}", name=street.name, kind="street", district_code=street.district_code,
                    code=street.code)
        session.merge(UnitRow(**_row(unit, "import")))
        count += 1
    session.commit()
    return count
