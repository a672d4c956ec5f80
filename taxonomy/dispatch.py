"""派单规则: the dispatch policy as data (``profiles/<name>/dispatch.yaml``), and its matching.

Rules this module states (``serving.domain.dispatch`` applies them to one appeal):
- rules are checked in file order and the first whose ``when`` holds wins; the conditions inside one
  ``when`` are ANDed, an empty ``when`` always holds, and a list value means "any of these";
- ``when`` speaks only of the facts in ``DispatchFacts``; an unknown fact name is rejected at load,
  with the key that names it (``rules[2].when.has_place``);
- ``then`` is either ``review: <reason>`` (the ticket waits for a person, no unit is guessed) or
  ``primary: <target>`` with optional ``co: [<target>…]``: direct dispatch when no co-unit resolves,
  joint dispatch otherwise;
- targets: ``street``, ``district``, ``owner_department`` (the category's department, at district level
  when the district is known and the department has a district counterpart, else city level),
  ``owner_department_city`` and, as a co-unit only, ``company`` (skipped when the category names none);
- a rule whose primary is ``street`` or ``district`` must require that place in its ``when``
  (checked at load), so a place target never fires without a place;
- rule ids are unique; ``review_threshold`` is the default category confidence below which
  ``confidence_below_threshold`` holds, and the service may override it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taxonomy._files import load_model
from taxonomy.categories import Scope
from taxonomy.errors import TaxonomyError

ReviewReason = Literal["low_confidence", "no_place", "no_owner"]
PrimaryTarget = Literal["street", "district", "owner_department", "owner_department_city"]
CoTarget = Literal["owner_department", "owner_department_city", "company"]
UrgencyValue = Literal[1, 2, 3, 4]


@dataclass(frozen=True)
class DispatchFacts:
    """What the rules may look at, for one appeal. Field names are the fact names used in ``when``."""

    confidence_below_threshold: bool
    has_owner: bool
    category_scope: Scope
    needs_place: bool
    has_street: bool
    has_district: bool
    has_company: bool
    urgency: int
    appeal_type: str


def _as_list(value):
    """``urgency: 1`` and ``urgency: [1, 2]`` both read as a list of accepted values."""
    return value if value is None or isinstance(value, list) else [value]


class Condition(BaseModel):
    """A rule's ``when``: every fact that is set must hold (extra keys are unknown facts)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    confidence_below_threshold: bool | None = None
    has_owner: bool | None = None
    category_scope: Scope | None = None
    needs_place: bool | None = None
    has_street: bool | None = None
    has_district: bool | None = None
    has_company: bool | None = None
    urgency: list[UrgencyValue] | None = Field(None, min_length=1)
    appeal_type: list[str] | None = Field(None, min_length=1)

    @field_validator("urgency", "appeal_type", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return _as_list(value)

    def matches(self, facts: DispatchFacts) -> bool:
        for name, wanted in self:
            if wanted is None:
                continue
            actual = getattr(facts, name)
            if (actual not in wanted) if isinstance(wanted, list) else (actual != wanted):
                return False
        return True


class Action(BaseModel):
    """A rule's ``then``: ``review`` with a reason, or a ``primary`` target with ``co`` targets."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    review: ReviewReason | None = None
    primary: PrimaryTarget | None = None
    co: list[CoTarget] = Field(default_factory=list)

    @model_validator(mode="after")
    def _review_or_dispatch(self) -> "Action":
        if (self.review is None) == (self.primary is None):
            raise ValueError("give exactly one of review (a reason) or primary (a target)")
        if self.review is not None and self.co:
            raise ValueError("a review action sends to no unit: remove co")
        if len(set(self.co)) != len(self.co):
            raise ValueError("co names a target twice")
        return self


class DispatchRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    when: Condition = Field(default_factory=Condition)
    then: Action


class Supervision(BaseModel):
    """督办: how overdue tickets are escalated. A ticket overdue by ``district_after`` times the time it was
    allowed (since its deadline was set) is raised to the district; by ``city_after`` times, to the city."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    district_after: float = Field(2.0, gt=1)
    city_after: float = Field(3.0, gt=1)


class DispatchRules(BaseModel):
    """The ordered dispatch rules of one profile. Load with ``load_dispatch_rules`` (it checks more)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    review_threshold: float = Field(ge=0, le=1)
    review_hours: float = Field(2.0, gt=0, description="a ticket waiting for review is routed within this")
    report_in_hours: float = Field(24.0, gt=0, description="a whistled unit reports in (报到) within this")
    supervision: Supervision = Field(default_factory=Supervision)
    rules: list[DispatchRule] = Field(min_length=1)

    @property
    def rule_ids(self) -> list[str]:
        return [rule.id for rule in self.rules]

    def first_match(self, facts: DispatchFacts) -> DispatchRule | None:
        return next((rule for rule in self.rules if rule.when.matches(facts)), None)


FACTS: tuple[str, ...] = tuple(Condition.model_fields)
# which fact a place target needs in the same rule's ``when``
_PLACE_FACT = {"street": "has_street", "district": "has_district"}


def load_dispatch_rules(path: str | Path) -> DispatchRules:
    """Read and check a ``dispatch.yaml``; every problem is a TaxonomyError naming the key."""
    path = Path(path)
    rules = load_model(DispatchRules, path)
    seen: set[str] = set()
    for i, rule in enumerate(rules.rules):
        if rule.id in seen:
            raise TaxonomyError(path, f"rules[{i}].id", f"duplicate rule id {rule.id!r}")
        seen.add(rule.id)
        fact = _PLACE_FACT.get(rule.then.primary or "")
        if fact and getattr(rule.when, fact) is not True:
            raise TaxonomyError(path, f"rules[{i}].then.primary",
                                f"{rule.then.primary!r} needs '{fact}: true' in this rule's when")
    return rules


__all__ = [
    "Action", "Condition", "CoTarget", "DispatchFacts", "DispatchRule", "DispatchRules", "FACTS",
    "PrimaryTarget", "ReviewReason", "load_dispatch_rules",
]
