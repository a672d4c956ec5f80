"""The unit registry in the database is the truth at run time: the profile's units are synced at start,
official street lists are imported (``jiesu units import``, ``POST /v1/units/import``), and units are
renamed and merged with their history — place resolution and dispatch see each change without a restart.

Rules:
- an imported street new to the registry is added; one whose name changed is renamed, the old name kept in
  its ``history`` (and resolvable as an alias);
- a merge (``merge_unit``) deactivates a unit and names its successor; its name stays an alias of the
  successor, so appeals that still name it resolve there;
- every change raises the registry's version (``registry_state``); a service process compares it on its
  requests and rebuilds its registry when it moved (``registry_from_store``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.store.models import RegistryStateRow, UnitRow
from taxonomy import Taxonomy, Unit, import_streets
from taxonomy.units import UnitRegistry


def _row(unit: Unit, source: str) -> dict:
    return {"id": unit.id, "name": unit.name, "kind": unit.kind, "district_code": unit.district_code,
            "department_id": unit.department_id, "service": unit.service, "source": source, "active": True}


def registry_version(session: Session) -> int:
    row = session.get(RegistryStateRow, 1)
    return row.version if row is not None else 0


def _bump(session: Session) -> None:
    row = session.get(RegistryStateRow, 1)
    if row is None:
        session.add(RegistryStateRow(id=1, version=1))
    else:
        row.version += 1


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sync_units(session: Session, taxonomy: Taxonomy) -> int:
    """Insert or update every unit of the profile; returns how many rows changed. Units imported or
    merged at run time are left as they are."""
    changed = 0
    existing = {row.id: row for row in session.query(UnitRow).all()}
    for unit in taxonomy.units:
        values = _row(unit, "profile")
        row = existing.get(unit.id)
        if row is None:
            session.add(UnitRow(**values, history=[]))
            changed += 1
        elif row.source == "profile" and row.merged_into is None and any(
                getattr(row, k) != v for k, v in values.items() if k != "source"):
            for key, value in values.items():
                if key != "source":
                    setattr(row, key, value)
            changed += 1
    if changed:
        _bump(session)
    session.commit()
    return changed


def import_units(session: Session, path: str | Path, taxonomy: Taxonomy) -> dict[str, int]:
    """Import an official street list (see ``taxonomy.import_streets`` for the formats): new streets are
    added, renamed ones renamed with their old name kept. Returns the counts per change."""
    codes = [u.district_code for u in taxonomy.units.of_kind("district")]
    return import_street_records(session, import_streets(path, codes))


def import_street_records(session: Session, streets) -> dict[str, int]:
    counts = {"added": 0, "renamed": 0, "unchanged": 0}
    for street in streets:
        unit_id = f"street:{street.code}"
        row = session.get(UnitRow, unit_id)
        if row is None:
            unit = Unit(id=unit_id, name=street.name, kind="street", district_code=street.district_code,
                        code=street.code)
            session.add(UnitRow(**_row(unit, "import"), history=[{"kind": "added", "at": _now()}]))
            counts["added"] += 1
        elif row.name != street.name:
            row.history = [*(row.history or []), {"kind": "renamed", "at": _now(), "from": row.name,
                                                   "to": street.name}]
            row.name = street.name
            counts["renamed"] += 1
        else:
            counts["unchanged"] += 1
    if counts["added"] or counts["renamed"]:
        _bump(session)
    session.commit()
    return counts


def merge_unit(session: Session, unit_id: str, into: str) -> UnitRow:
    """Merge ``unit_id`` into ``into`` (two streets become one): the old unit is deactivated and names its
    successor; both keep the change in their history."""
    old, new = session.get(UnitRow, unit_id), session.get(UnitRow, into)
    if old is None:
        raise LookupError(unit_id)
    if new is None or not new.active:
        raise ValueError(f"into: {into!r} is not an active unit")
    if old.id == new.id or old.kind != new.kind:
        raise ValueError(f"into: {into!r} must be another unit of the same kind ({old.kind})")
    if not old.active:
        raise ValueError(f"{unit_id} is already merged into {old.merged_into}")
    at = _now()
    old.active, old.merged_into = False, new.id
    old.history = [*(old.history or []), {"kind": "merged", "at": at, "into": new.id}]
    new.history = [*(new.history or []), {"kind": "absorbed", "at": at, "from": old.id, "name": old.name}]
    _bump(session)
    session.commit()
    return new


def registry_from_store(session: Session, taxonomy: Taxonomy) -> tuple[UnitRegistry, dict[str, tuple[str, ...]]]:
    """The registry as the store holds it, and the street aliases: the profile's, plus every former name
    of a unit (renamed, or merged into it)."""
    rows = session.execute(select(UnitRow)).scalars().all()
    registry = UnitRegistry()
    for row in rows:
        if not row.active:
            continue
        profile = taxonomy.units.get(row.id)
        base = profile if profile is not None else Unit(id=row.id, name=row.name, kind=row.kind,
                                                       district_code=row.district_code,
                                                       department_id=row.department_id, service=row.service,
                                                       code=row.id.split(":", 1)[1] if row.kind == "street" else None)
        registry.add(replace(base, name=row.name))
    aliases = {k: tuple(v) for k, v in taxonomy.street_aliases.items()}
    for row in rows:
        former = [h["from"] for h in row.history or [] if h.get("kind") == "renamed"]
        target = row.merged_into if not row.active else row.id
        if not row.active:
            former.append(row.name)
        if former and target in registry:
            aliases[target] = tuple(dict.fromkeys((*aliases.get(target, ()), *former)))
    return registry, aliases


def active_units(session: Session, kind: str | None = None, district_code: str | None = None) -> list[UnitRow]:
    """The units that can be dispatched to now (merged units are not), by id."""
    query = select(UnitRow).where(UnitRow.active.is_(True)).order_by(UnitRow.id)
    if kind:
        query = query.where(UnitRow.kind == kind)
    if district_code:
        query = query.where(UnitRow.district_code == district_code)
    return list(session.execute(query).scalars())


def unit_labels(session: Session) -> dict[str, str]:
    """A name a reviewer can read and search for each active unit (a street with its district), by id."""
    rows = active_units(session)
    districts = {r.district_code: r.name for r in rows if r.kind == "district"}
    return {row.id: f"{row.name}（{districts[row.district_code]}）"
            if row.kind == "street" and row.district_code in districts else row.name
            for row in sorted(rows, key=lambda r: (r.kind, r.id))}
