"""群体性诉求 and repeats: when appeals form a group, what a group changes, and what counts as a repeat.

Rules (the service applies them at intake, ``serving.services.groups``):
- an appeal joins the open group of its place (street, or district when ``place: district``) whose
  appeals it resembles (mean character 2–3-gram cosine to its three most similar members ≥
  ``similarity``) and whose last appeal is at most
  ``window_days`` old; with no such group, it forms one with the most similar ungrouped appeal of that
  place and window, if any; an appeal with no resolved place never joins a group;
- when a group reaches a ``raise_urgency`` size, its open tickets rise to that level (never lower);
- a group of at least ``bonus_min_size`` appeals marks its tickets as group appeals for the bonus;
- the same caller (phone) with the same text within ``duplicate_window_hours`` is a repeat: linked to
  the first ticket, never dispatched again, and not counted in volume or scores;
- 城市问题台账: a hotspot of at least ``ledger_min_size`` appeals whose appeals span at least
  ``ledger_recur_days`` days is a recurring problem and gets a ledger entry (see ``serving.services.ledger``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class UrgencyRaise(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    size: int = Field(ge=2)
    level: Literal[1, 2, 3, 4]


class GroupRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    place: Literal["street", "district"] = "street"
    window_days: float = Field(7, gt=0)
    similarity: float = Field(0.5, gt=0, le=1)
    raise_urgency: list[UrgencyRaise] = Field(default_factory=list)
    bonus_min_size: int = Field(5, ge=2)
    duplicate_window_hours: float = Field(72, ge=0)
    ledger_min_size: int = Field(5, ge=2)
    ledger_recur_days: float = Field(14, ge=0)

    @field_validator("raise_urgency")
    @classmethod
    def _by_size(cls, steps: list[UrgencyRaise]) -> list[UrgencyRaise]:
        return sorted(steps, key=lambda s: s.size)

    def level_for(self, size: int) -> int | None:
        """The most urgent level a group of ``size`` appeals calls for, or None."""
        levels = [step.level for step in self.raise_urgency if size >= step.size]
        return min(levels) if levels else None
