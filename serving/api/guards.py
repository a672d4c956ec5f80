"""A request guard that runs before any route: a query parameter holding a NUL character is refused with
422 naming it, and a body over ``JIESU_MAX_BODY_BYTES`` with 413 — at once where its Content-Length says so,
else (chunked) as soon as the bytes received pass the limit, so a large body is never read whole. Both
answer the one error body (``serving.api.errors``).

A pure ASGI middleware, so that it reads nothing but the query string.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import HTTPException

from serving.api.errors import error_response


class GuardMiddleware:
    def __init__(self, app, max_body_bytes: int):
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            bad = _nul_parameter(scope.get("query_string", b""))
            if bad is not None:
                return await error_response(422, f"query.{bad}: must not contain NUL characters",
                                            f"query.{bad}")(scope, receive, send)
            length = dict(scope.get("headers") or []).get(b"content-length", b"")
            if length.isdigit() and int(length) > self.max_body_bytes:
                return await error_response(413, self.too_large())(scope, receive, send)
            receive = self._counted(receive)
        return await self.app(scope, receive, send)

    def too_large(self) -> str:
        return f"the body is larger than {self.max_body_bytes} bytes (JIESU_MAX_BODY_BYTES)"

    def _counted(self, receive):
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    # FastAPI passes its HTTPException raised while reading the body on to the handlers
                    raise HTTPException(413, self.too_large())
            return message

        return counted


def _nul_parameter(query: bytes) -> str | None:
    if b"%00" not in query and b"\x00" not in query:
        return None
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in key or "\x00" in value:
            return key.replace("\x00", "") or "?"
    return None
