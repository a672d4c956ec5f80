"""One error body for every error the API answers: ``{"detail": {"message", "field"?, "status"?}}``.

``message`` says what is wrong in a sentence; ``field`` names the field (``text``, ``caller.phone``,
``query.from``) where one is to blame; ``status`` is the ticket's state on a 409. Validation errors
keep the list of every failed field in ``errors``. The handlers turn FastAPI's and Starlette's errors, and
the request's own overflowing dates, into this shape; ``ERROR_RESPONSES`` documents it in the OpenAPI.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException

logger = logging.getLogger("jiesu")


class ErrorDetail(BaseModel):
    message: str = Field(description="What is wrong, in a sentence")
    field: str | None = Field(None, description="The field to blame, where there is one")
    status: str | None = Field(None, description="409: the ticket's current state")
    errors: list[dict] | None = Field(None, description="422: every field that failed validation")


class ErrorBody(BaseModel):
    detail: ErrorDetail


ERROR_RESPONSES = {code: {"model": ErrorBody, "description": text} for code, text in {
    401: "No or an unknown API key", 403: "The key's role may not do this", 404: "Not found",
    409: "Not allowed in the ticket's current state, or changed by another request first",
    413: "The body is too large", 422: "A field is missing or invalid", 503: "Not ready (no model, busy database)",
}.items()}


def error_response(code: int, message: str, field: str | None = None, headers: dict | None = None,
                   **extra) -> Response:
    detail = {"message": message, **({"field": field} if field else {}), **{k: v for k, v in extra.items() if v}}
    # ensure_ascii: a client's undecodable input may be echoed in a message; escapes are always valid JSON
    return Response(json.dumps({"detail": detail}, ensure_ascii=True, default=str), status_code=code,
                    media_type="application/json", headers=headers)


def detail_of(detail) -> dict:
    """An HTTPException's detail (a string or a dict with ``message``) as the error body's detail."""
    if isinstance(detail, dict):
        return {"message": str(detail.get("message", "")), **{k: v for k, v in detail.items() if k != "message"}}
    return {"message": str(detail)}


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def _http(request, exc: HTTPException):
        detail = detail_of(exc.detail)
        return error_response(exc.status_code, detail.pop("message"), detail.pop("field", None),
                              getattr(exc, "headers", None), **detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        # name the field and the reason; leave out the input, which may not even be encodable
        errors = [{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in exc.errors()]
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        loc = list(first.get("loc", ()))
        if loc[:1] == ["body"] and len(loc) > 1:  # a body field is named as the action errors name it
            loc = loc[1:]
        field = ".".join(str(p) for p in loc) or None
        return error_response(422, f"{field}: {first['msg']}" if field else first["msg"], field, errors=errors)

    @app.exception_handler(OverflowError)
    async def _out_of_range(request, exc):
        # dates near year 1 or 9999 overflow when moved between time zones: the request is at fault
        return error_response(422, f"a date or number in the request is out of range ({exc})")

    @app.exception_handler(OperationalError)
    @app.exception_handler(SQLAlchemyTimeoutError)
    async def _busy(request, exc):
        # a locked SQLite file, an exhausted pool, a server that went away: the client should retry; the
        # statement's parameters (citizens' data) are hidden by the engine and not echoed here
        logger.warning("database busy or unavailable: %s", type(getattr(exc, "orig", exc)).__name__)
        return error_response(503, "the database is busy or unavailable; retry shortly",
                              headers={"Retry-After": "2"})

    @app.exception_handler(StatementError)
    async def _statement(request, exc):
        if isinstance(exc.orig, OverflowError):
            return error_response(422, f"a date or number in the request is out of range ({exc.orig})")
        raise exc
