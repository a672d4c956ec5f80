"""The body of each action on a ticket, validated once (pydantic): what a unit, a reviewer or the
callback role sends. ``parse_body`` turns a raw mapping into the action's body or raises
``InvalidAction`` naming the field."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from serving.domain.enums import Satisfaction

Text = Annotated[str, Field(min_length=1, max_length=5000)]
UnitId = Annotated[str, Field(min_length=1, max_length=64)]


class InvalidAction(ValueError):
    """The body of an action is wrong: names the field."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _strip(cls, value):
        if type(value) is str:
            if "\x00" in value:
                raise ValueError("must not contain NUL characters")
            return value.strip()
        if isinstance(value, list) and any(type(v) is str and "\x00" in v for v in value):
            raise ValueError("must not contain NUL characters")
        return value


class Accept(_Body):
    """签收: no fields."""


class Return(_Body):
    """退单: why the unit is not the right one."""

    reason: Text


class Assign(_Body):
    """派单 / 改派 by a reviewer: the units, and any correction of the classification."""

    primary_unit_id: UnitId
    co_unit_ids: list[UnitId] = Field(default_factory=list, max_length=20)
    category: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    urgency: Annotated[int, Field(ge=1, le=4)] | None = None
    appeal_type: Annotated[str, Field(min_length=1, max_length=8)] | None = None
    group_appeal: bool | None = None
    long_standing: bool | None = None


class Whistle(_Body):
    """吹哨: the units summoned to report in."""

    unit_ids: list[UnitId] = Field(min_length=1, max_length=20)
    note: Annotated[str, Field(max_length=5000)] = ""


class ReportIn(_Body):
    """报到: the whistled unit's answer."""

    text: Annotated[str, Field(max_length=5000)] = ""


class Note(_Body):
    text: Text


class Reply(_Body):
    """答复: the primary unit's answer to the citizen."""

    text: Text
    solved: bool


class Evaluate(_Body):
    """回访: what the citizen said."""

    resolved: bool
    satisfaction: Satisfaction
    comment: Annotated[str, Field(max_length=5000)] = ""

    @field_validator("satisfaction", mode="before")
    @classmethod
    def _known(cls, value):
        if value not in set(Satisfaction):
            raise ValueError(f"must be one of {', '.join(Satisfaction)}")
        return Satisfaction(value)


class Reopen(_Body):
    reason: Annotated[str, Field(max_length=5000)] = ""


class Close(_Body):
    """办结: no fields."""


class MarkUnreasonable(_Body):
    reason: Text


BODIES: dict[str, type[_Body]] = {
    "accept": Accept, "return": Return, "assign": Assign, "whistle": Whistle, "report-in": ReportIn,
    "note": Note, "reply": Reply, "evaluate": Evaluate, "reopen": Reopen, "close": Close,
    "mark-unreasonable": MarkUnreasonable,
}


def parse_body(action: str, raw: dict | BaseModel) -> _Body:
    model = BODIES.get(action)
    if model is None:
        raise ValueError(f"unknown action {action!r}")
    if isinstance(raw, model):
        return raw
    try:
        return model.model_validate(raw if isinstance(raw, dict) else raw.model_dump())
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "body"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = f"{action} takes no field {field!r}"
        raise InvalidAction(field, message) from None
