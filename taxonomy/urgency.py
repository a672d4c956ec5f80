"""四级响应: the four urgency levels, their deadlines and the signals that raise an appeal to each.

Rules this module states (the rule layer in ``serving.model.rules`` evaluates them):
- levels are 1 (特急, most urgent) to 4 (普通); each has a response deadline (签收) and a resolution
  deadline (办结) in hours, counted in calendar time or in working time (Saturdays and Sundays skipped);
- levels are checked from most to least urgent and the first whose signals fire wins;
- a phrase preceded within ``negation_window`` characters by a negation (没有, 未, 排除…) or a hedge
  (容易, 担心, 隐患…: a danger that might happen, not one happening) does not fire;
- appeal types in ``fixed_for_types`` (表扬, 建议) take their fixed level whatever the text says;
- category signals only confirm: they raise the level together with a phrase or a pattern, and on their
  own make that level the floor for the category;
- with no signal, the appeal type's default level applies (咨询/建议/表扬 → 4), else ``default_level``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LEVELS = (1, 2, 3, 4)


class UrgencySignals(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phrases: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)

    @field_validator("phrases")
    @classmethod
    def _no_empty_phrase(cls, phrases: list[str]) -> list[str]:
        for phrase in phrases:
            if not phrase.strip():
                raise ValueError("empty phrase")
        return phrases

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
        return patterns


class UrgencyLevel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    level: Literal[1, 2, 3, 4]
    name: str = Field(min_length=1)
    definition: str = Field(min_length=1)
    response_hours: float = Field(gt=0)
    resolution_hours: float = Field(gt=0)
    basis: Literal["calendar", "working"] = "calendar"
    signals: UrgencySignals = Field(default_factory=UrgencySignals)

    @model_validator(mode="after")
    def _response_before_resolution(self) -> "UrgencyLevel":
        if self.resolution_hours < self.response_hours:
            raise ValueError("resolution_hours must not be shorter than response_hours")
        return self


class UrgencyScheme(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    negations: list[str] = Field(default_factory=list)
    negation_window: int = Field(default=4, ge=0, le=20)
    hedges: list[str] = Field(default_factory=list)
    fixed_for_types: dict[str, Literal[1, 2, 3, 4]] = Field(default_factory=dict)
    default_level: Literal[1, 2, 3, 4] = 3
    levels: list[UrgencyLevel]
    default_for_types: dict[str, Literal[1, 2, 3, 4]] = Field(default_factory=dict)

    @field_validator("levels")
    @classmethod
    def _all_four_levels(cls, levels: list[UrgencyLevel]) -> list[UrgencyLevel]:
        found = sorted(level.level for level in levels)
        if found != list(LEVELS):
            raise ValueError(f"exactly the levels 1, 2, 3, 4 are needed once each, found {found}")
        return sorted(levels, key=lambda level: level.level)

    def get(self, level: int) -> UrgencyLevel:
        for item in self.levels:
            if item.level == level:
                return item
        raise KeyError(f"urgency level {level} does not exist (levels are 1–4)")
