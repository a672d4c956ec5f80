"""Operations: health, readiness, Prometheus metrics, the current model and reloading it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel

from serving.api.deps import Admin, CurrentActor, SessionDep, StateDep, bearer, get_actor, require
from serving.api.schemas import HealthOut, ReadyOut
from serving.model.bundle import BundleError
from serving.services.tickets import TicketService, status_counts
from serving.store.db import ping

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthOut, summary="The process is up")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, summary="Database reachable (503 if not); without a model: degraded")
def readyz(state: StateDep, session: SessionDep, response: Response) -> dict:
    """ready: the database answers and a model is loaded. degraded (200): no model — intake still takes
    appeals and queues them for review (``no_model``). not ready (503): the database does not answer."""
    checks = {}
    try:
        ping(session)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any database failure means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    checks["model"] = "ok" if state.predictor is not None else f"error: {state.model_error or 'no model loaded'}"
    if checks["database"] != "ok":
        response.status_code = 503
        return {"status": "not ready", "checks": checks}
    return {"status": "ready" if checks["model"] == "ok" else "degraded", "checks": checks}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
def metrics(request: Request, state: StateDep, session: SessionDep,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> Response:
    """Needs an admin or analyst key (a Prometheus scraper sends it as a bearer token), unless
    ``JIESU_METRICS_PUBLIC`` is set for a deployment that exposes the port only to its monitoring."""
    if not state.settings.metrics_public:
        require(get_actor(session, credentials), "analyst")
    counts = status_counts(session)
    return Response(request.app.state.metrics.render(counts), media_type="text/plain; version=0.0.4")


class ModelInfo(BaseModel):
    path: str | None
    kind: str | None
    created_at: str | None
    labels: list[str]
    metrics: dict
    training_data: dict


class ReloadBody(BaseModel):
    path: str | None = None


def model_info(state) -> ModelInfo:
    predictor = state.predictor
    if predictor is None:
        raise HTTPException(503, f"no model is loaded: {state.model_error or 'set JIESU_MODEL_PATH'}")
    data = predictor.manifest.data
    return ModelInfo(path=str(state.model_path), kind=data.get("kind"), created_at=data.get("created_at"),
                     labels=predictor.labels, metrics=data.get("metrics", {}),
                     training_data={k: v for k, v in data.get("training_data", {}).items() if k != "files"})


@router.get("/v1/models/current", response_model=ModelInfo, summary="The model serving now")
def current_model(state: StateDep, actor: CurrentActor) -> ModelInfo:
    return model_info(state)


@router.post("/v1/models/reload", response_model=ModelInfo, summary="Load a bundle without restarting (admin)")
def reload_model(state: StateDep, session: SessionDep, actor: Admin, body: ReloadBody | None = None) -> ModelInfo:
    """Load a bundle; the old one keeps serving unless the new one loads completely. Tickets received
    while no model was loaded (queued with ``no_model``) are then classified and dispatched."""
    path = Path(body.path) if body and body.path else state.model_path or state.settings.model_path
    if path is None:
        raise HTTPException(422, "path: no bundle path given and none configured")
    try:
        state.load_model(path)
    except (BundleError, OSError, ValueError) as exc:
        raise HTTPException(422, f"path: the bundle was refused, the previous model keeps serving ({exc})") from None
    TicketService(session, state.taxonomy, state.predictor, state.settings.review_threshold).classify_waiting()
    return model_info(state)
