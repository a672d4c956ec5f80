"""A profile: the complete vocabulary of one hotline, loaded from a directory of files.

``profile.yaml`` names the files (categories, urgency, appeal types, districts, departments and
companies, street aliases, scoring, dispatch rules, group appeals) and the official street list, which is read from the data directory
(``JIESU_DATA_DIR``, default ``../shared/data`` beside the project). Loading checks that the files agree
with each other: every category owner is a department, every company a company, every urgency category
signal a category, every appeal type default a type.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

from taxonomy._files import load_model, read_yaml, validate
from taxonomy.appeal_types import AppealTypeScheme
from taxonomy.categories import CategoryTree
from taxonomy.dispatch import DispatchRules, load_dispatch_rules
from taxonomy.groups import GroupRules
from taxonomy.errors import TaxonomyError
from taxonomy.scoring import ScoringRules
from taxonomy.units import DepartmentsFile, DistrictsFile, UnitRegistry, import_streets
from taxonomy.urgency import UrgencyScheme

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROFILE = "beijing"


def default_data_dir() -> Path:
    """Where shared data lives: ``JIESU_DATA_DIR`` if set, else ``../shared/data`` beside the project."""
    env = os.environ.get("JIESU_DATA_DIR")
    return Path(env) if env else (PROJECT_ROOT.parent / "shared" / "data")


class _StreetsRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str


class _ProfileFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    city: str = Field(min_length=1)
    timezone: str = Field("Asia/Shanghai", description="the hotline's time zone (IANA name): days and months")
    categories: str
    urgency: str
    appeal_types: str
    districts: str
    departments: str
    street_aliases: str | None = None
    keywords: str | None = None
    scoring: str
    dispatch: str
    groups: str
    streets: _StreetsRef


class _KeywordsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keywords: dict[str, list[str]] = Field(default_factory=dict)


class _AliasesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    not_place_names: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Taxonomy:
    """Everything the rest of jiesu needs to know about one hotline's domain."""

    name: str
    city: str
    directory: Path
    categories: CategoryTree
    urgency: UrgencyScheme
    appeal_types: AppealTypeScheme
    units: UnitRegistry
    street_aliases: dict[str, tuple[str, ...]]  # unit id -> other names people use
    not_place_names: frozenset[str]  # bare street names that are ordinary words (河北 is a province)
    scoring: ScoringRules
    dispatch: DispatchRules
    groups: GroupRules
    streets_file: Path
    timezone: ZoneInfo = ZoneInfo("Asia/Shanghai")


def load_taxonomy(
    profile: str | Path = DEFAULT_PROFILE,
    *,
    data_dir: str | Path | None = None,
    streets_file: str | Path | None = None,
    categories_file: str | Path | None = None,
) -> Taxonomy:
    """Load a profile by name (``beijing``) or directory. ``streets_file`` replaces the profile's street
    list; ``categories_file`` replaces its category tree (a ``.yaml`` tree or a platform ``.csv``): an
    imported tree carries no owners, and urgency category signals it lacks never fire."""
    directory = _profile_dir(profile)
    spec_path = directory / "profile.yaml"
    spec = load_model(_ProfileFile, spec_path)

    if categories_file is None:
        categories = CategoryTree.from_yaml(directory / spec.categories)
    elif str(categories_file).lower().endswith(".csv"):
        categories = CategoryTree.from_csv(categories_file)
    else:
        categories = CategoryTree.from_yaml(categories_file)
    if spec.keywords:
        path = directory / spec.keywords
        categories = categories.with_keywords(load_model(_KeywordsFile, path).keywords, path,
                                              strict=categories_file is None)
    urgency = load_model(UrgencyScheme, directory / spec.urgency)
    appeal_types = load_model(AppealTypeScheme, directory / spec.appeal_types)
    districts = load_model(DistrictsFile, directory / spec.districts)
    departments = load_model(DepartmentsFile, directory / spec.departments)
    scoring = load_model(ScoringRules, directory / spec.scoring)
    dispatch = load_dispatch_rules(directory / spec.dispatch)
    groups = load_model(GroupRules, directory / spec.groups)

    streets_path = Path(streets_file) if streets_file else Path(data_dir or default_data_dir()) / spec.streets.file
    streets = import_streets(streets_path, [d.code for d in districts.districts])
    try:
        units = UnitRegistry.build(districts, departments, streets)
    except ValueError as exc:
        raise TaxonomyError(directory / spec.departments, None, str(exc)) from None

    aliases, not_place_names = _street_aliases(directory / spec.street_aliases, units) if spec.street_aliases else ({}, [])
    _check_references(directory, spec, categories, urgency, appeal_types, departments, categories_file)
    _check_industries(directory / spec.scoring, scoring, categories, departments, categories_file)
    return Taxonomy(
        name=spec.name,
        city=spec.city,
        directory=directory,
        categories=categories,
        urgency=urgency,
        appeal_types=appeal_types,
        units=units,
        street_aliases=aliases,
        not_place_names=frozenset(not_place_names),
        scoring=scoring,
        dispatch=dispatch,
        groups=groups,
        streets_file=streets_path,
        timezone=_zone(spec.timezone, spec_path),
    )


def _zone(name: str, path: Path) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TaxonomyError(path, "timezone", f"{name!r} is not a time zone name (e.g. Asia/Shanghai)") from None


@lru_cache(maxsize=4)
def cached_taxonomy(profile: str = DEFAULT_PROFILE, data_dir: str | None = None) -> Taxonomy:
    """The same profile loaded once per process (loading reads a dozen files and builds ~2k units)."""
    return load_taxonomy(profile, data_dir=data_dir)


def _profile_dir(profile: str | Path) -> Path:
    candidate = Path(profile)
    if candidate.is_dir():
        return candidate
    named = PROFILES_DIR / str(profile)
    if named.is_dir():
        return named
    known = sorted(p.name for p in PROFILES_DIR.iterdir() if p.is_dir())
    raise TaxonomyError(profile, None, f"no such profile (known: {', '.join(known)}; or give a directory)")


def _street_aliases(path: Path, units: UnitRegistry) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    raw = load_model(_AliasesFile, path)
    by_name: dict[str, list[str]] = {}
    district_names = {u.district_code: u.name for u in units.of_kind("district")}
    for street in units.of_kind("street"):
        by_name.setdefault(street.name, []).append(street.id)
        by_name.setdefault(f"{district_names.get(street.district_code, '')}|{street.name}", []).append(street.id)
    out: dict[str, tuple[str, ...]] = {}
    for key, names in raw.aliases.items():
        ids = by_name.get(key, [])
        if not ids:
            raise TaxonomyError(path, f"aliases.{key}", "not an official street name in the street list")
        if len(ids) > 1:
            raise TaxonomyError(path, f"aliases.{key}", "this name exists in several districts: write 区名|街道名")
        out[ids[0]] = tuple(names)
    return out, raw.not_place_names


def _check_references(directory, spec, categories, urgency, appeal_types, departments, categories_file) -> None:
    dept_ids = {d.id for d in departments.departments}
    company_ids = {c.id for c in departments.companies}
    cat_file = Path(categories_file) if categories_file else directory / spec.categories
    if categories_file is None:  # an imported tree carries no owners; dispatch then falls back to review
        for node in categories.walk():
            if node.owner is None:
                raise TaxonomyError(cat_file, node.label, "no owner: set owner on the first-level category")
            if node.owner not in dept_ids:
                raise TaxonomyError(cat_file, f"{node.label}.owner", f"unknown department {node.owner!r}")
            if node.company and node.company not in company_ids:
                raise TaxonomyError(cat_file, f"{node.label}.company", f"unknown company {node.company!r}")
    for level in urgency.levels if categories_file is None else ():  # an imported tree may lack them: unused
        for i, label in enumerate(level.signals.categories):
            if label not in categories:
                raise TaxonomyError(directory / spec.urgency, f"levels[{level.level - 1}].signals.categories[{i}]",
                                    f"{label!r} is not in the category tree")
    for key in ("default_for_types", "fixed_for_types"):
        for type_name in getattr(urgency, key):
            if type_name not in appeal_types.names:
                raise TaxonomyError(directory / spec.urgency, f"{key}.{type_name}", "not an appeal type")


def _check_industries(path: Path, scoring, categories, departments, categories_file) -> None:
    dept_ids = {d.id for d in departments.departments}
    company_ids = {c.id for c in departments.companies}
    for i, industry in enumerate(scoring.industries):
        for j, label in enumerate(industry.categories):
            if categories_file is None and label not in categories:
                raise TaxonomyError(path, f"industries[{i}].categories[{j}]", f"{label!r} is not in the category tree")
        for j, dept in enumerate(industry.departments):
            if dept not in dept_ids:
                raise TaxonomyError(path, f"industries[{i}].departments[{j}]", f"unknown department {dept!r}")
        for j, company in enumerate(industry.companies):
            if company not in company_ids:
                raise TaxonomyError(path, f"industries[{i}].companies[{j}]", f"unknown company {company!r}")


__all__ = ["Taxonomy", "load_taxonomy", "cached_taxonomy", "default_data_dir", "read_yaml", "validate"]
