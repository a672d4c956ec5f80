"""Request and response bodies. Validation errors answer 422 naming the field."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving.model.appeals import MAX_TEXT_CHARS, MAX_TITLE_CHARS, AppealInput

def require_timezone(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("give a timezone, e.g. 2026-11-27T09:30:00+08:00")
    if not 1900 <= value.year <= 2999:
        raise ValueError("out of range: years 1900–2999")
    return value


Channel = Literal["phone", "web", "wechat", "app", "weibo", "board", "open311", "other"]


class Caller(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=100)
    phone: str | None = Field(None, max_length=40, pattern=r"^[0-9+\-() ]*$")


class AppealIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=MAX_TEXT_CHARS, description="What the citizen said (required)")
    title: str | None = Field(None, max_length=MAX_TITLE_CHARS)
    channel: Channel = "other"
    received_at: datetime | None = Field(None, description="When the hotline received it (timezone required)")
    address: str | None = Field(None, max_length=500)
    caller: Caller | None = None
    at: datetime | None = Field(None, description="Admin import only: the time of this record")

    _aware = field_validator("received_at", "at")(classmethod(lambda cls, v: require_timezone(v)))

    def appeal(self) -> AppealInput:
        """The one appeal shape the service works on (checked by ``validate_appeal``, not here)."""
        return AppealInput(text=self.text, title=self.title or "", channel=self.channel, received_at=self.received_at,
                           address=self.address, caller_name=self.caller.name if self.caller else None,
                           caller_phone=self.caller.phone if self.caller else None)


class UnitRef(BaseModel):
    id: str
    name: str
    kind: str


class Category(BaseModel):
    label: str = Field(description="The category path the router is sure of, as a label: 城乡建设/供暖")
    confidence: float = Field(description="The joint confidence of that path")
    top3: list[tuple[str, float]] = Field(description="The three most probable first-level categories")
    path: list[str] = Field(default_factory=list, description="The path, one name per level")
    confidences: list[float] = Field(default_factory=list, description="The joint confidence per level of path")
    guess: list[str] = Field(default_factory=list, description="The most probable path, as deep as the model reads "
                                                                 "(deeper than path where a level fell below its threshold)")
    failed_level: int | None = Field(None, description="The first level whose confidence fell below its threshold")


class Classification(BaseModel):
    category: Category
    department: str | None = Field(None, description="The sector department that owns the problem (an id of the "
                                                     "profile's departments)")
    department_confidence: float | None = None
    company: str | None = Field(None, description="The utility company, for its own service")
    urgency: int
    urgency_reason: str
    appeal_type: str
    district: str | None
    street: str | None


class Dispatch(BaseModel):
    mode: Literal["direct", "joint", "review"]
    primary_unit: UnitRef | None
    co_units: list[UnitRef]
    respond_by: datetime | None
    resolve_by: datetime | None


class EventOut(BaseModel):
    id: int
    kind: str
    actor: str
    unit_id: str | None
    at: datetime
    payload: dict


class TicketOut(BaseModel):
    ticket_id: int
    status: str
    received_at: datetime
    channel: str
    title: str
    text: str
    caller: Caller | None = Field(None, description="Only for the roles that need it (docs/PRIVACY.md)")
    classification: Classification
    dispatch: Dispatch
    unreasonable: bool
    group_appeal: bool
    long_standing: bool
    group_id: int | None = None
    duplicate_of: int | None = None
    events: list[EventOut] | None = None


class ReviewItem(BaseModel):
    ticket_id: int
    received_at: datetime
    title: str
    text: str
    reasons: list[str]
    suggestions: list[tuple[str, float]]
    district: str | None
    street: str | None


class ScoreOut(BaseModel):
    unit_id: str
    unit_name: str
    dispatched: int
    responses_owed: int
    responded_on_time: int
    evaluated: int
    resolved: int
    satisfied: float
    response_rate: float | None = Field(description="None: no response was owed (no data)")
    resolution_rate: float | None = Field(description="None: no ticket was evaluated (no data)")
    satisfaction_rate: float | None = Field(description="None: no ticket was evaluated (no data)")
    bonus: float
    score: float | None = Field(description="None: a rate has no data; such units rank after the rest")
    rank: int
    share: float | None = Field(None, description="An industry member's: its tickets / the industry's tickets")
    members: list["ScoreOut"] = Field(default_factory=list, description="level=industry: the industry's "
                                                                         "departments and companies on its tickets")


class VolumeRow(BaseModel):
    """One slice and period; the slice columns present are those asked for with ``by``."""

    model_config = ConfigDict(extra="allow")
    period: str | None = None
    appeals: int
    dispatched: int
    responded_on_time: int
    evaluated: int
    resolved: int
    satisfied: float
    response_rate: float | None
    resolution_rate: float | None
    satisfaction_rate: float | None


class VolumeOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    interval: str | None
    by: list[str]
    items: list[VolumeRow]


class HotspotOut(BaseModel):
    id: int
    size: int
    ticket_ids: list[int]
    title: str
    key_phrases: list[str]
    place: str | None
    first: str
    last: str
    trend: str
    weekly: list[int]
    likes: int = 0
    category: str | None = None


class HotspotsOut(BaseModel):
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    appeals: int
    items: list[HotspotOut]


class AlertOut(BaseModel):
    category: str
    place_id: str
    place: str
    date: str
    observed: int
    expected: float
    p_value: float
    baseline: list[int]


class AlertsOut(BaseModel):
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    level: str
    items: list[AlertOut]


class LedgerEntryOut(BaseModel):
    id: int
    title: str
    place: str | None
    owner_unit_id: str | None
    owner_unit: str | None
    status: str
    opened_at: datetime
    closed_at: datetime | None
    note: str | None
    ticket_ids: list[int]
    history: list[dict]


class LedgerSyncOut(BaseModel):
    entries: list[LedgerEntryOut]


class TopicMonth(BaseModel):
    model_config = ConfigDict(extra="allow")
    month: str
    appeals: int


class TopicOut(BaseModel):
    id: int
    month: str
    category: str
    level: int
    title: str
    chosen_by: str
    chosen_at: datetime
    months: list[TopicMonth]


class TopicSummary(BaseModel):
    id: int
    month: str
    category: str
    title: str


class TopicCandidate(BaseModel):
    model_config = ConfigDict(extra="allow")
    category: str
    appeals: int


class TopicCandidatesOut(BaseModel):
    month: str
    level: int
    items: list[TopicCandidate]


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    status: str
    checks: dict[str, str]


class ImportOut(BaseModel):
    added: int
    renamed: int
    unchanged: int
