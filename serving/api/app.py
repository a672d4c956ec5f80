"""The FastAPI application: ``create_app(settings)`` builds it; ``jiesu serve`` runs it with uvicorn.

On start: open the database and upgrade its schema, sync the profile's units, seed the bootstrap admin
key, load the model. A missing or bad model leaves the service up and degraded (``/readyz`` says so):
intake still takes appeals and queues them for review (``no_model``) until an operator fixes the model
and ``POST /v1/models/reload``, which classifies and dispatches the waiting ones. While running, a background thread flags overdue
tickets (督办) every ``JIESU_SUPERVISE_INTERVAL_S`` seconds — in one process of the deployment only
(``store.locks``), however many workers ``jiesu serve --workers N`` starts. ``app_from_env`` is the
factory each worker process calls.
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from serving.api import errors
from serving.api.guards import GuardMiddleware
from serving.api.metrics import Metrics, MetricsMiddleware
from serving.api.routes import (analytics, keys, ledger, lookup, open311, ops, outbox, reports, review, scores,
                                tickets, topics, ui, units)
from serving.api.state import ServiceState
from serving.model.bundle import BundleError
from serving.services.keys import create_key
from serving.settings import Settings
from serving.store.db import make_engine, migrate, session_factory
from serving.store.locks import Leader, deployment_lock
from serving.services.units import sync_units
from taxonomy import load_taxonomy

logger = logging.getLogger("jiesu")


def build_state(settings: Settings) -> ServiceState:
    taxonomy = load_taxonomy(settings.profile, data_dir=settings.data_dir)
    engine = make_engine(settings.database_url, settings.db_busy_timeout_s)
    sessions = session_factory(engine)
    with deployment_lock(engine, "startup"):  # several workers start at once: one migrates and syncs at a time
        migrate(engine)
        with sessions() as session:
            sync_units(session, taxonomy)
            if settings.bootstrap_admin_key:
                create_key(session, "admin", key=settings.bootstrap_admin_key)
    from serving.services.outbox import load_sender

    sender = load_sender(settings.outbox_sender, settings.outbox_log)  # misconfigured: the start stops, in one line
    state = ServiceState(settings=settings, engine=engine, sessions=sessions, taxonomy=taxonomy, profile=taxonomy,
                         outbox_sender=sender)
    with sessions() as session:
        state.refresh_units(session, force=True)
    if settings.model_path is None:
        state.model_error = "JIESU_MODEL_PATH is not set"
    else:
        try:
            state.load_model(settings.model_path)
        except (BundleError, OSError, ValueError) as exc:
            state.model_error = str(exc)
    if state.predictor is not None:  # appeals taken while the service ran without a model
        from serving.services.tickets import TicketService

        with sessions() as session:
            TicketService(session, state.taxonomy, state.predictor, settings.review_threshold).classify_waiting()
    return state


def supervision_loop(state: ServiceState, stop: threading.Event, leader: Leader) -> None:
    """督办: flag overdue tickets every ``supervise_interval_s`` seconds until the app stops — in the one
    process of the deployment that leads the sweep (the others wait to take over)."""
    from serving.services.tickets import TicketService

    while not stop.wait(state.settings.supervise_interval_s):
        if not leader.held():
            continue
        try:
            with state.sessions() as session:
                TicketService(session, state.taxonomy, None, None).supervise()
        except Exception:  # noqa: BLE001 - a failed sweep is logged and retried next interval
            logger.exception("supervision sweep failed")
    leader.release()


def outbox_loop(state: ServiceState, stop: threading.Event, leader: Leader) -> None:
    """点对点反馈: deliver the due messages every ``outbox_interval_s`` seconds, in the leading process."""
    from serving.services.outbox import deliver_due

    while not stop.wait(state.settings.outbox_interval_s):
        if not leader.held():
            continue
        try:
            with state.sessions() as session:
                deliver_due(session, state.outbox_sender)
        except Exception:  # noqa: BLE001 - a failed round is logged and retried next interval
            logger.exception("outbox delivery failed")
    leader.release()


@asynccontextmanager
async def lifespan(app: FastAPI):
    state: ServiceState = app.state.jiesu
    import anyio.to_thread

    # the requests one worker runs at once (the thread pool of the sync routes)
    anyio.to_thread.current_default_thread_limiter().total_tokens = state.settings.request_threads
    stop = threading.Event()
    if state.settings.supervise_interval_s > 0:
        leader = Leader(state.engine, "supervision")
        threading.Thread(target=supervision_loop, args=(state, stop, leader), daemon=True, name="supervision").start()
    if state.settings.outbox_interval_s > 0:
        threading.Thread(target=outbox_loop, args=(state, stop, Leader(state.engine, "outbox")), daemon=True,
                         name="outbox").start()
    yield
    stop.set()


def app_from_env() -> FastAPI:
    """The app of one worker process, from the ``JIESU_*`` environment (``jiesu serve --workers N``)."""
    return create_app(Settings())


def create_app(settings: Settings | None = None, state: ServiceState | None = None) -> FastAPI:
    state = state or build_state(settings or Settings())
    app = FastAPI(title="jiesu 接诉", version="0.1.0", lifespan=lifespan, responses=errors.ERROR_RESPONSES,
                  description="Classify, dispatch, track and score city hotline appeals (接诉即办).")
    app.state.jiesu = state
    app.state.metrics = Metrics()
    # the guard inside the metrics (which count its refusals): the last added is the outermost
    app.add_middleware(GuardMiddleware, max_body_bytes=state.settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware)
    for module in (tickets, review, scores, units, analytics, topics, ledger, reports, ops, keys, open311, lookup,
                   outbox):
        app.include_router(module.router)
    app.include_router(analytics.alerts_router)
    app.include_router(ui.router)

    errors.install(app)

    @app.exception_handler(ui.SignIn)
    async def _sign_in(request, exc):  # pragma: no cover - trivial
        return RedirectResponse("/ui/login", status_code=303)

    @app.exception_handler(ui.UiForbidden)
    async def _forbidden(request, exc):
        return ui.page(request, "ui/forbidden.html.j2", actor=None, message=str(exc), status_code=403)
    return app
