"""GET /v1/scores: the 三率 of every unit of one level for one month, ranked; ``level=industry``: the
部门+行业 joint scores, each industry with its members' lines."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query

from serving.api.deps import CurrentActor, SessionDep, StateDep
from serving.api.schemas import ScoreOut
from serving.services.scores import monthly_scores, visible_scores

router = APIRouter(prefix="/v1", tags=["scores"])


@router.get("/scores", response_model=list[ScoreOut], summary="三率 scores and ranks for a month")
def scores(state: StateDep, session: SessionDep, actor: CurrentActor,
           month: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")],
           level: Literal["street", "district", "department", "company", "industry"] = "street") -> list[ScoreOut]:
    try:
        results = visible_scores(monthly_scores(session, state.taxonomy, month, level), actor, level)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return [score_out(s) for s in results]


def score_out(s) -> ScoreOut:
    return ScoreOut(**{k: v for k, v in s.__dict__.items() if k not in ("ticket_ids", "members")},
                    members=[score_out(m) for m in s.members])
