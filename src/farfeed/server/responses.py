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
    """Turn `ApiError`, aiohttp's HTTP exceptions and crashes into JSON error responses."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = _HTTP_MESSAGES.get(exc.status, exc.reason)
        if exc.status == 413:
            message = f"request body too large: {exc.text or ''}".strip().rstrip(":")
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow",)}
        return error_response(exc.status, f"{message}: {request.method} {request.path}", headers)
    except (ConnectionError, OSError) as exc:
        if request.transport is None or request.transport.is_closing():
            raise  # the client went away; nothing to answer
        log.exception("I/O error serving %s %s", request.method, request.path)
        return error_response(500, f"server I/O error: {exc.__class__.__name__}: {exc}")
    except Exception as exc:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return error_response(500, f"internal error: {exc.__class__.__name__}: {exc}")
