"""Request bodies from outside: a size limit checked before anything is read, and clear 4xx answers for bodies
that cannot be read (not UTF-8) or hold values JSON cannot carry back (NaN, Infinity)."""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sharpeye.metrics import Metrics

# Routes that take large bodies check their own, larger caps before reading (photo uploads: the site's
# ``governance.reports.request_max_bytes``; the hotline import: 10 MB; another hub's deliveries: a photo); every
# other route has the general limit.
OWN_LIMIT = re.compile(r"^/api/(reports/form|reports/import|cases/[^/]+/photos|hierarchy/inbox)$")


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int, size: int | None = None) -> None:
        said = f"{size} bytes" if size is not None else "larger than that"
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"request body is {said}: at most {limit} bytes are accepted here (SHARPEYE_API_MAX_BODY_BYTES)",
        )


class BodyLimit:
    """ASGI middleware: a declared ``Content-Length`` over ``limit`` is answered 413 before the body is read; a
    body sent without one (chunked) is counted as it arrives and refused once it passes the limit."""

    def __init__(self, app: ASGIApp, limit: int, rejected: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.rejected = rejected or (lambda _reason: None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or OWN_LIMIT.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            self.rejected("too_large")
            error = BodyTooLarge(self.limit, declared)
            await JSONResponse({"detail": error.detail}, error.status_code)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)  # counted by the error handler
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as the strings ``NaN``, ``Infinity``, ``-Infinity`` (JSON has no such
    numbers: an error message quoting one would otherwise fail to encode)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


REJECTED = "sharpeye_api_rejected_requests_total"


_counters: weakref.WeakKeyDictionary[Metrics, Counter] = weakref.WeakKeyDictionary()


def rejected_counter(metrics: Metrics) -> Counter:
    """Requests refused for their body, by reason (too_large, not_utf8, invalid), on the hub's registry (made once
    per registry: an app started twice over one hub shares it)."""
    if metrics not in _counters:
        _counters[metrics] = Counter(REJECTED, "API requests refused for their body, by reason", ["reason"],
                                     registry=metrics.registry)  # fmt: skip
    return _counters[metrics]


def install(app: FastAPI, limit: int, counter: Callable[[], Counter | None]) -> None:
    """The body limit and the error answers, on ``app``. ``counter()`` gives the running hub's counter of refused
    requests (None before start)."""

    def count(reason: str) -> None:
        found = counter()
        if found is not None:
            found.labels(reason).inc()

    app.add_middleware(BodyLimit, limit=limit, rejected=count)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = json_safe(jsonable_encoder(exc.errors(), custom_encoder={bytes: _bytes_preview}))
        count("invalid")
        return Response(orjson.dumps({"detail": errors}), status.HTTP_422_UNPROCESSABLE_CONTENT,
                        media_type="application/json")  # fmt: skip

    async def unreadable(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError):
            count("not_utf8")
            detail = f"the body is not UTF-8 text: byte {cause.object[cause.start]:#04x} at position {cause.start}"
            return JSONResponse({"detail": detail}, status.HTTP_400_BAD_REQUEST)
        if isinstance(exc, BodyTooLarge):
            count("too_large")
        return await http_exception_handler(request, exc)

    handlers: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
        RequestValidationError: invalid,
        HTTPException: unreadable,
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)


def _bytes_preview(data: bytes) -> str:
    return data[:100].decode("utf-8", "replace")
