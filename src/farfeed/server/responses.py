"""HTTP errors as JSON: `ApiError` for expected failures, one middleware that renders every error.

Every error the gateway sends is ``{"error": "<one line naming the problem>"}``; bad input
is a 4xx, an unexpected exception a logged 500, and the server keeps serving either way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("farfeed.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An expected failure with its HTTP status and a one-line message for the client."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def json_response(data: Any, *, status: int = 200) -> web.Response:
    """A compact JSON response."""
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The JSON error body every failure uses."""
    resp = json_response({"error": message}, status=status)
    resp.headers.update(headers or {})
    return resp


_HTTP_MESSAGES = {
    404: "no such endpoint or object",
    405: "method not allowed here",
    413: "request body too large",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn `ApiError`, aiohttp's HTTP exceptions and crashes into JSON error responses.

    A client that went away is not an error worth a traceback (status 499, never sent).
    When an answer had already begun, the connection is cut instead of appending a
    second response to the first.
    """
    try:
        return await handler(request)
    except ApiError as exc:
        resp = error_response(exc.status, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = _HTTP_MESSAGES.get(exc.status, exc.reason)
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        resp = error_response(exc.status, f"{message}: {request.method} {request.path}", headers)
    except Exception as exc:
        transport = request.transport
        if isinstance(exc, ConnectionError) and (transport is None or transport.is_closing()):
            resp = error_response(499, "client closed the connection")
        else:
            log.exception("unexpected error serving %s %s", request.method, request.path)
            resp = error_response(500, f"internal error: {exc.__class__.__name__}: {exc}")
    if request.writer.output_size > 0 and request.transport is not None:
        request.transport.abort()  # the client sees a cut response, never a wrong one
    return resp
