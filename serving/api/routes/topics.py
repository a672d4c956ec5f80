"""每月一题: candidate topics for a month, choosing one, and tracking it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from serving.analytics.topics import candidates, track
from serving.api.deps import Analyst, CurrentActor, SessionDep, StateDep
from serving.api.schemas import TopicCandidatesOut, TopicOut, TopicSummary
from serving.services import topics as topic_service
from serving.services.topics import InvalidTopic
from serving.store.models import TopicRow

router = APIRouter(tags=["analytics"])
Month = Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]


@router.get("/v1/analytics/topics", response_model=TopicCandidatesOut,
            summary="Candidate 每月一题 for a month, ranked, with the evidence")
def topic_candidates(state: StateDep, session: SessionDep, actor: Analyst, month: Month,
                     level: Annotated[int, Query(ge=1, le=3)] = 1,
                     limit: Annotated[int, Query(ge=1, le=100)] = 10):
    try:
        items = candidates(session, state.taxonomy, month, level, limit)
    except (ValueError, OverflowError) as exc:
        raise HTTPException(422, f"month: {exc}") from None
    return {"month": month, "level": level, "items": items}


class TopicIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    category: str = Field(min_length=1, max_length=300)
    title: str | None = Field(None, max_length=200)


def topic_out(topic: TopicRow, state, session) -> dict:
    months = track(session, state.taxonomy, topic.category, topic.month, datetime.now(timezone.utc),
                   topic.level)
    return {"id": topic.id, "month": topic.month, "category": topic.category, "level": topic.level,
            "title": topic.title, "chosen_by": topic.chosen_by, "chosen_at": topic.chosen_at, "months": months}


@router.post("/v1/topics", status_code=201, response_model=TopicOut, summary="Choose a 每月一题; its tracking starts")
def choose_topic(body: TopicIn, state: StateDep, session: SessionDep, actor: Analyst):
    try:
        topic = topic_service.choose_topic(session, state.taxonomy, body.month, body.category, body.title, actor.name,
                             datetime.now(timezone.utc))
    except InvalidTopic as exc:
        raise HTTPException(422, {"message": str(exc), "field": exc.field}) from None
    return topic_out(topic, state, session)


@router.get("/v1/topics", response_model=list[TopicSummary], summary="Chosen topics")
def list_topics(session: SessionDep, actor: CurrentActor) -> list[dict]:
    return [{"id": t.id, "month": t.month, "category": t.category, "title": t.title} for t in topic_service.list_topics(session)]


@router.get("/v1/topics/{topic_id}", response_model=TopicOut, summary="A chosen topic with its month-by-month tracking")
def get_topic(topic_id: Annotated[int, Path(ge=1, le=2**62)], state: StateDep, session: SessionDep,
              actor: CurrentActor):
    topic = topic_service.get_topic(session, topic_id)
    if topic is None:
        raise HTTPException(404, f"topic {topic_id} not found")
    return topic_out(topic, state, session)
