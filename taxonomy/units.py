"""承办单位: the units an appeal can be dispatched to, and the registry that holds them.

Four kinds: ``street`` (街道/乡镇/地区办事处, where first dispatch goes), ``district`` (区), ``department``
(市级部门, and their district-level counterparts 区级部门) and ``company`` (公共服务企业).
Unit ids are stable strings built from official codes and the profile's slugs:
``district:110105``, ``street:110105001``, ``dept:housing``, ``dept:housing@110105`` (the district
counterpart), ``company:heating``. The registry is data loaded at run time: districts, departments
and companies from the profile, streets from an official list (``import_streets``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from taxonomy.errors import TaxonomyError

UnitKind = Literal["street", "district", "department", "company"]
UNIT_KINDS: tuple[UnitKind, ...] = ("street", "district", "department", "company")
Service = Literal["water", "power", "gas", "heating", "telecom", "transit"]


@dataclass(frozen=True)
class Unit:
    id: str
    name: str
    kind: UnitKind
    district_code: str | None = None
    short_name: str | None = None
    aliases: tuple[str, ...] = ()
    department_id: str | None = None  # for departments: the profile slug shared by city and district levels
    service: str | None = None  # for companies
    code: str | None = None  # official division code for streets and districts

    @property
    def level(self) -> Literal["city", "district"]:
        return "district" if self.district_code and self.kind != "street" else "city"


class DistrictSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^\d{6}$")
    name: str = Field(min_length=2)
    short_name: str = Field(min_length=1)


class DistrictsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    districts: list[DistrictSpec] = Field(min_length=1)


class DepartmentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=2)
    short_name: str | None = None
    aliases: list[str] = Field(default_factory=list)
    district_counterpart: str | None = None


class CompanySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=2)
    short_name: str | None = None
    aliases: list[str] = Field(default_factory=list)
    service: Service


class DepartmentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    departments: list[DepartmentSpec] = Field(min_length=1)
    companies: list[CompanySpec] = Field(default_factory=list)


@dataclass(frozen=True)
class StreetRecord:
    code: str
    name: str
    district_code: str


def import_streets(path: str | Path, district_codes: Iterable[str] | None = None) -> list[StreetRecord]:
    """Read an official street list.

    Accepts the statistical division code format (columns ``code, name, areaCode``, as published by the
    National Bureau of Statistics) and a plain format (``code, name, district_code``). Errors name the
    file, the line and the column.
    """
    path = Path(path)
    known = set(district_codes) if district_codes is not None else None
    records: list[StreetRecord] = []
    seen: set[str] = set()
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            district_column = next((c for c in ("areaCode", "district_code") if c in columns), None)
            for needed in ("code", "name"):
                if needed not in columns:
                    raise TaxonomyError(path, needed, f"missing column (found {columns})")
            if district_column is None:
                raise TaxonomyError(path, "areaCode", f"missing column areaCode or district_code (found {columns})")
            for line, row in enumerate(reader, start=2):
                code = (row.get("code") or "").strip()
                name = (row.get("name") or "").strip()
                district = (row.get(district_column) or "").strip()
                if not code or not name or not district:
                    empty = "code" if not code else "name" if not name else district_column
                    raise TaxonomyError(path, f"line {line}.{empty}", "empty value")
                if known is not None and district not in known:
                    raise TaxonomyError(path, f"line {line}.{district_column}", f"unknown district code {district!r}")
                if code in seen:
                    raise TaxonomyError(path, f"line {line}.code", f"duplicate code {code!r}")
                seen.add(code)
                records.append(StreetRecord(code=code, name=name, district_code=district))
    except FileNotFoundError:
        raise TaxonomyError(path, None, "street list not found") from None
    except UnicodeDecodeError as exc:
        raise TaxonomyError(path, None, f"not valid UTF-8 ({exc.reason})") from None
    if not records:
        raise TaxonomyError(path, None, "the street list is empty")
    return records


@dataclass
class UnitRegistry:
    """All units, by id, with the lookups dispatch needs."""

    units: dict[str, Unit] = field(default_factory=dict)

    def add(self, unit: Unit) -> None:
        if unit.id in self.units:
            raise ValueError(f"unit id {unit.id!r} is registered twice")
        self.units[unit.id] = unit

    def __iter__(self) -> Iterator[Unit]:
        return iter(self.units.values())

    def __len__(self) -> int:
        return len(self.units)

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self.units

    def get(self, unit_id: str) -> Unit | None:
        return self.units.get(unit_id)

    def of_kind(self, kind: UnitKind) -> list[Unit]:
        return [u for u in self.units.values() if u.kind == kind]

    def district(self, code: str) -> Unit | None:
        return self.units.get(f"district:{code}")

    def streets_in(self, district_code: str) -> list[Unit]:
        return [u for u in self.units.values() if u.kind == "street" and u.district_code == district_code]

    def department(self, department_id: str, district_code: str | None = None) -> Unit | None:
        """The city department, or its counterpart in a district when one exists."""
        if district_code:
            unit = self.units.get(f"dept:{department_id}@{district_code}")
            if unit is not None:
                return unit
        return self.units.get(f"dept:{department_id}")

    def company(self, company_id: str) -> Unit | None:
        return self.units.get(f"company:{company_id}")

    @classmethod
    def build(
        cls,
        districts: DistrictsFile,
        departments: DepartmentsFile,
        streets: Iterable[StreetRecord],
    ) -> "UnitRegistry":
        registry = cls()
        for d in districts.districts:
            registry.add(Unit(id=f"district:{d.code}", name=d.name, kind="district", district_code=d.code,
                              short_name=d.short_name, code=d.code))
        for dept in departments.departments:
            registry.add(Unit(id=f"dept:{dept.id}", name=dept.name, kind="department", short_name=dept.short_name,
                              aliases=tuple(dept.aliases), department_id=dept.id))
            if dept.district_counterpart:
                for d in districts.districts:
                    name = dept.district_counterpart.format(district=d.name, district_short=d.short_name)
                    registry.add(Unit(id=f"dept:{dept.id}@{d.code}", name=name, kind="department",
                                      district_code=d.code, department_id=dept.id))
        for company in departments.companies:
            registry.add(Unit(id=f"company:{company.id}", name=company.name, kind="company",
                              short_name=company.short_name, aliases=tuple(company.aliases),
                              service=company.service))
        for street in streets:
            registry.add(Unit(id=f"street:{street.code}", name=street.name, kind="street",
                              district_code=street.district_code, code=street.code))
        return registry
