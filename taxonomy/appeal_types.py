"""Appeal types (投诉/举报/求助/咨询/建议/表扬): one per appeal, the citizen's main intent.

Rules: each signal phrase found adds its weight to its type (×``title_weight`` when found in the title);
the highest total wins, ties go to the type listed first; with no signal at all, ``default`` applies,
or ``default_when_urgent`` when the urgency rules put the appeal at level 1 or 2.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

APPEAL_TYPES = ("投诉", "举报", "求助", "咨询", "建议", "表扬")


class AppealType(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    definition: str = Field(min_length=1)
    signals: dict[str, float] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in APPEAL_TYPES:
            raise ValueError(f"{name!r} is not an appeal type; use one of {', '.join(APPEAL_TYPES)}")
        return name

    @field_validator("signals")
    @classmethod
    def _positive(cls, signals: dict[str, float]) -> dict[str, float]:
        for phrase, weight in signals.items():
            if not str(phrase).strip():
                raise ValueError("empty signal phrase")
            if weight <= 0:
                raise ValueError(f"signal {phrase!r} needs a positive weight, got {weight}")
        return signals


class AppealTypeScheme(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    title_weight: float = Field(default=2.0, gt=0)
    default: str = "投诉"
    default_when_urgent: str | None = None
    types: list[AppealType]

    @model_validator(mode="after")
    def _complete(self) -> "AppealTypeScheme":
        names = [t.name for t in self.types]
        missing = [n for n in APPEAL_TYPES if n not in names]
        if missing:
            raise ValueError(f"missing appeal types: {', '.join(missing)}")
        if len(set(names)) != len(names):
            raise ValueError("an appeal type is listed twice")
        for key in ("default", "default_when_urgent"):
            value = getattr(self, key)
            if value is not None and value not in names:
                raise ValueError(f"{key} {value!r} is not one of the listed types")
        return self

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.types]
