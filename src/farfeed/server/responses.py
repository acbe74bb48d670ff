"""HTTP errors as JSON: `ApiError` for expected failures, one middleware that renders every error.

Every error the gateway sends is ``{"error": "<one line naming the problem>"}``; bad input
is a 4xx, an unexpected exception a logged 500, and the server keeps serving either way.
An ``OSError`` from any handler is answered by its errno (`OS_ERRORS`: a name too long is
400, a full disk 507, no file descriptors left 503), and no error body ever holds the
server's own paths: they are replaced by ``ROOT``.
"""

from __future__ import annotations

import errno
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

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


def parse_json(body: bytes, what: str) -> Any:
    """Decode a JSON request body; 400 naming the problem (nesting too deep included)."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ApiError(400, f"{what} is not valid JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"{what} is not valid JSON: {exc}"[:300]) from None


DISK_FULL = "the storage site's disk is full: nothing was stored; free space there (retrying will not help)"
_NO_FILES = "the gateway is out of file descriptors; retry shortly (operator: raise `ulimit -n` or lower --max-connections)"

#: errno -> (status, message) for an OSError that reaches the error middleware.
OS_ERRORS: dict[int, tuple[int, str]] = {
    errno.ENAMETOOLONG: (400, "a name in the path is too long for the storage site's file system"),
    errno.ENOTDIR: (400, "a part of the path is a file, not a folder"),
    errno.EISDIR: (400, "the path is a folder, not an object"),
    errno.ELOOP: (400, "the path has too many levels of symbolic links"),
    errno.EEXIST: (409, "something else already exists at that path"),
    errno.EFBIG: (413, "the object is larger than the storage site's file system allows"),
    errno.ENOSPC: (507, DISK_FULL),
    errno.EDQUOT: (507, "the storage site's disk quota is used up: nothing was stored; free space there (retrying will not help)"),
    errno.EROFS: (507, "the storage site's file system is read-only: nothing was stored"),
    errno.EMFILE: (503, _NO_FILES),
    errno.ENFILE: (503, _NO_FILES),
    errno.ENOMEM: (503, "the gateway is out of memory; retry shortly"),
}
#: Seconds a client should wait before retrying a 503.
RETRY_AFTER = "1"


class _Throttle:
    """At most one log line per ``interval`` seconds per key; says how many were held back."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: dict[object, float] = {}
        self._held: dict[object, int] = {}

    def __call__(self, key: object) -> int | None:
        """None: stay quiet; else the number of lines held back since the last one."""
        now = time.monotonic()
        if now - self._last.get(key, -self.interval) < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


_throttle = _Throttle()


def os_error_response(exc: OSError, request: web.Request) -> web.Response:
    """The answer to an OSError, by errno; 5xx are logged (at most one line per errno per 10 s)."""
    code = exc.errno if exc.errno is not None else -1
    status, message = OS_ERRORS.get(
        code, (500, f"internal error: {errno.errorcode.get(code, type(exc).__name__)} ({exc.strerror or 'no detail'})")
    )
    if status >= 500:
        held = _throttle(code)
        if held is not None:
            more = f" ({held} more like it not logged)" if held else ""
            log.warning("%s %s: %s %s%s", request.method, request.path, status, message, more)
    headers = {"Retry-After": RETRY_AFTER} if status == 503 else None
    return error_response(status, message, headers)


_HTTP_MESSAGES = {
    404: "no such endpoint or object",
    405: "method not allowed here",
    413: "request body too large",
}


def error_middleware(hide: Sequence[str] = ()) -> Middleware:
    """Middleware: turn `ApiError`, aiohttp's HTTP exceptions, OSErrors and crashes into
    JSON error responses whose text never holds one of the strings in ``hide`` (the
    server's paths; each becomes ``ROOT``).

    A client that went away is not an error worth a traceback (status 499, never sent).
    When an answer had already begun, the connection is cut instead of appending a
    second response to the first.
    """
    secrets_first = sorted({h for h in hide if h}, key=len, reverse=True)

    def scrub(text: str) -> str:
        for h in secrets_first:
            text = text.replace(h, "ROOT")
        return text

    @web.middleware
    async def render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            resp = error_response(exc.status, scrub(exc.message), exc.headers)
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
            elif isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
                resp = os_error_response(exc, request)
            else:
                log.exception("unexpected error serving %s %s", request.method, request.path)
                resp = error_response(500, scrub(f"internal error: {exc.__class__.__name__}: {exc}")[:500])
        if request.writer.output_size > 0 and request.transport is not None:
            request.transport.abort()  # the client sees a cut response, never a wrong one
        return resp

    return render_errors
