"""The dispatch policy: one classified appeal in, a dispatch decision out. Pure: no database, no HTTP.

Rules this module implements (the rules themselves are data: ``taxonomy/profiles/<name>/dispatch.yaml``,
their semantics are stated in ``taxonomy.dispatch``):
- the facts are read from the classification (its backed-off category node's scope and needs_place, the
  department and company it names, urgency, type, the place); the first matching rule decides, and its id
  is kept on the decision;
- ``confidence_below_threshold`` compares the classification's department confidence (the probability
  that the named department owns the appeal) with the policy's ``review_threshold`` (settings, else the
  bundle's, chosen on validation, else the file's); a confidence equal to the threshold is not below it.
  A review for low confidence says where confidence failed: the first category level below its
  threshold, or the department;
- ``owner_department`` is the classification's department (at district level where a counterpart
  exists), ``company`` its company (a utility's own service); a classification without one skips it;
- a street implies its district: the street's district wins over a ``district_id`` that disagrees,
  because the street is the more specific evidence;
- a review decision names no unit and has no deadlines; a rule whose primary target does not resolve
  (no owner department, no place) becomes a review with reason no_owner / no_place, and no matching rule
  becomes a review with reason ``no_rule``: a gap in the rules never guesses a unit;
- co-units that do not resolve (a category without a company) are skipped, as are repeats and the
  primary itself; the mode is joint when a co-unit remains, else direct.
Deadlines, from the urgency level (``urgency.yaml``), both counted from ``received_at``:
- respond_by = start + response_hours (签收), resolve_by = start + resolution_hours (办结);
- ``basis: calendar`` adds the hours as elapsed time;
- ``basis: working`` counts only hours that fall on Monday to Friday (whole days, in ``start``'s own
  timezone); a start on a weekend counts from Monday 00:00; public holidays are not modelled.
Unknown categories, unit ids and urgency levels raise ValueError: they are caller errors, not data.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from serving.domain.records import Assignment, Classification, DispatchMode
from serving.domain.enums import Mode
from taxonomy import Taxonomy, TaxonomyError
from taxonomy.categories import Category
from taxonomy.dispatch import Action, DispatchFacts, DispatchRules
from taxonomy.units import Unit
from taxonomy.urgency import LEVELS, UrgencyScheme

NO_MATCHING_RULE = "no_matching_rule"
_SATURDAY = 5


@dataclass(frozen=True)
class DispatchDecision:
    mode: DispatchMode
    primary_unit_id: str | None  # None when mode == "review"
    co_unit_ids: tuple[str, ...]
    rule_id: str  # the rule that fired
    reasons: tuple[str, ...]  # review reasons (empty unless review)
    respond_by: datetime | None  # None when review
    resolve_by: datetime | None
    detail: dict = field(default_factory=dict)  # for low confidence: where it failed, the value, the threshold

    def assignment(self) -> Assignment | None:
        """Who the ticket is with after this decision; None while it waits for review."""
        if self.primary_unit_id is None or self.respond_by is None or self.resolve_by is None:
            return None
        return Assignment(self.primary_unit_id, self.co_unit_ids, self.respond_by, self.resolve_by)


@dataclass(frozen=True)
class DispatchPolicy:
    """What dispatch reads besides the appeal: the profile, its rules and the review threshold."""

    taxonomy: Taxonomy
    rules: DispatchRules
    review_threshold: float | None = None  # None: the rules file's

    @property
    def threshold(self) -> float:
        return self.rules.review_threshold if self.review_threshold is None else self.review_threshold


@dataclass(frozen=True)
class _Place:
    street: Unit | None
    district: Unit | None

    @property
    def district_code(self) -> str | None:
        return self.district.district_code if self.district else None


def decide_dispatch(classification: Classification, received_at: datetime, policy: DispatchPolicy) -> DispatchDecision:
    """Apply the first matching dispatch rule to one classified appeal."""
    taxonomy = policy.taxonomy
    node = _category(taxonomy, classification.category)
    urgency = classification.urgency
    if urgency not in LEVELS:
        raise ValueError(f"urgency: {urgency!r} is not a level (levels are 1–4)")
    if classification.department is not None and taxonomy.units.department(classification.department) is None:
        raise ValueError(f"department: {classification.department!r} is not a department of profile {taxonomy.name!r}")
    if classification.company is not None and taxonomy.units.company(classification.company) is None:
        raise ValueError(f"company: {classification.company!r} is not a company of profile {taxonomy.name!r}")
    place = _place(taxonomy, classification.district_id, classification.street_id)
    confidence = classification.department_confidence
    facts = DispatchFacts(
        confidence_below_threshold=confidence < policy.threshold,
        has_owner=classification.department is not None,
        category_scope=node.scope,
        needs_place=node.needs_place,
        has_street=place.street is not None,
        has_district=place.district is not None,
        has_company=classification.company is not None,
        urgency=urgency,
        appeal_type=classification.appeal_type,
    )
    rule = policy.rules.first_match(facts)
    if rule is None:
        return _review(NO_MATCHING_RULE, "no_rule")
    decision = _apply(rule.id, rule.then, classification, place, taxonomy, urgency, received_at)
    if decision.reasons == ("low_confidence",):
        failed = classification.category_failed_level
        decision = replace(decision, detail={
            "failed": f"category_level_{failed}" if failed else "department", "department": classification.department,
            "confidence": round(confidence, 4), "threshold": round(policy.threshold, 4),
            "category_confidences": [round(c, 4) for c in classification.category_guess_confidences]})
    return decision


def deadlines(urgency: int, start: datetime, scheme: UrgencyScheme) -> tuple[datetime, datetime]:
    """(respond_by, resolve_by) for an urgency level, counted from ``start`` on the level's basis."""
    try:
        level = scheme.get(urgency)
    except KeyError as exc:
        raise ValueError(f"urgency: {exc.args[0]}") from None
    add = _add_working_hours if level.basis == "working" else _add_calendar_hours
    return add(start, level.response_hours), add(start, level.resolution_hours)


def _apply(rule_id: str, then: Action, classification: Classification, place: _Place, taxonomy: Taxonomy,
           urgency: int, received_at: datetime) -> DispatchDecision:
    if then.review is not None:
        return _review(rule_id, then.review)
    primary = _resolve(then.primary, classification, place, taxonomy)
    if primary is None:
        return _review(rule_id, "no_place" if then.primary in ("street", "district") else "no_owner")
    co: list[str] = []
    for target in then.co:
        unit = _resolve(target, classification, place, taxonomy)
        if unit is not None and unit.id != primary.id and unit.id not in co:
            co.append(unit.id)
    respond_by, resolve_by = deadlines(urgency, received_at, taxonomy.urgency)
    mode: Literal["direct", "joint"] = "joint" if co else "direct"
    return DispatchDecision(mode, primary.id, tuple(co), rule_id, (), respond_by, resolve_by)


def _review(rule_id: str, reason: str) -> DispatchDecision:
    return DispatchDecision(Mode.REVIEW, None, (), rule_id, (reason,), None, None)


def _resolve(target: str | None, classification: Classification, place: _Place, taxonomy: Taxonomy) -> Unit | None:
    units = taxonomy.units
    if target == "street":
        return place.street
    if target == "district":
        return place.district
    if target == "company":
        return units.company(classification.company) if classification.company else None
    department = classification.department
    if department is None:
        return None
    if target == "owner_department":
        return units.department(department, place.district_code)
    if target == "owner_department_city":
        return units.department(department)
    raise ValueError(f"unknown dispatch target {target!r}")


def _category(taxonomy: Taxonomy, label: str) -> Category:
    try:
        return taxonomy.categories.get(label)
    except TaxonomyError as exc:
        raise ValueError(f"category: {exc.reason} of profile {taxonomy.name!r}") from None


def _place(taxonomy: Taxonomy, district_id: str | None, street_id: str | None) -> _Place:
    units = taxonomy.units
    if street_id:
        street = units.get(street_id)
        if street is None or street.kind != "street":
            raise ValueError(f"street_id: {street_id!r} is not a street of profile {taxonomy.name!r}")
        return _Place(street, units.district(street.district_code or ""))
    if district_id:
        district = units.get(district_id)
        if district is None or district.kind != "district":
            raise ValueError(f"district_id: {district_id!r} is not a district of profile {taxonomy.name!r}")
        return _Place(None, district)
    return _Place(None, None)


def _add_calendar_hours(start: datetime, hours: float) -> datetime:
    return start + timedelta(hours=hours)


def _add_working_hours(start: datetime, hours: float) -> datetime:
    remaining = timedelta(hours=hours)
    at = _skip_weekend(start)
    while True:
        midnight = at.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        # ``<=``: a deadline that uses up Friday exactly ends at Friday 24:00, not Monday 00:00
        if remaining <= midnight - at:
            return at + remaining
        remaining -= midnight - at
        at = _skip_weekend(midnight)


def _skip_weekend(at: datetime) -> datetime:
    if at.weekday() < _SATURDAY:
        return at
    monday = at + timedelta(days=7 - at.weekday())
    return monday.replace(hour=0, minute=0, second=0, microsecond=0)


__all__ = ["DispatchDecision", "DispatchPolicy", "NO_MATCHING_RULE", "decide_dispatch", "deadlines"]
