"""What the gateway logs, kept free of secrets and bounded in volume.

- `AccessLogger` (``--access-log``): one line per request, with the values of the query
  string redacted (a token pasted into a URL never reaches a log; the gateway accepts
  tokens only in the ``Authorization`` header, which is never logged).
- `quiet_accept_errors`: when ``accept()`` fails (no file descriptors left), asyncio
  logs a traceback each time; this handler logs one summary line per interval instead.
- `BadRequestFilter`: aiohttp logs a traceback for every malformed request it refuses
  (garbage on the port, a request line over 8 KiB); this turns each into one line, at
  most one per interval, without the request's text.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

log = logging.getLogger("farfeed.server")

#: Seconds between two summary lines of the same kind.
LOG_INTERVAL = 10.0
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_ACCEPT = "socket.accept() out of system resource"


def redact_target(target: str) -> str:
    """A request target with every query value hidden.

    >>> redact_target("/_farfeed/list?prefix=ds/&token=3f9c2a0e")
    '/_farfeed/list?prefix=…&token=…'
    """
    path, sep, query = target.partition("?")
    if not sep:
        return path
    shown = []
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        shown.append(f"{name}=…" if eq and _NAME.fullmatch(name) else "…")
    return f"{path}?{'&'.join(shown)}"


class AccessLogger(AbstractAccessLogger):
    """``REMOTE "METHOD TARGET HTTP/1.1" STATUS BYTES SECONDS``, the target's query redacted."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        version = f"{request.version.major}.{request.version.minor}"
        self.logger.info(
            '%s "%s %s HTTP/%s" %d %d %.3f',
            request.remote, request.method, redact_target(request.raw_path), version,
            response.status, response.body_length, time,
        )  # fmt: skip


class Summary:
    """Counts events and logs one line per `LOG_INTERVAL`: the first at once, the rest as a sum."""

    def __init__(self, what: str, hint: str, *, interval: float = LOG_INTERVAL) -> None:
        self.what = what
        self.hint = hint
        self.interval = interval
        self._count = 0
        self._last = -interval
        self._detail = ""
        self._flush: asyncio.TimerHandle | None = None

    def add(self, detail: str, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Count one event; log now if the last line is ``interval`` old, else later."""
        self._count += 1
        self._detail = detail
        now = time.monotonic()
        if now - self._last >= self.interval:
            self.emit()
        elif loop is not None and self._flush is None:
            self._flush = loop.call_later(self.interval - (now - self._last), self.emit)

    def emit(self) -> None:
        """Log the events counted since the last line (if any)."""
        self._flush = None
        if self._count:
            log.warning("%s %d time(s) in the last %.0f s (%s); %s", self.what, self._count, self.interval, self._detail, self.hint)
            self._count = 0
            self._last = time.monotonic()


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop`` log accept() failures as a summary line per interval, not a traceback each."""
    summary = Summary(
        "could not accept a connection",
        "raise the open-file limit (ulimit -n) or lower --max-connections",
    )
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith(_ACCEPT):
            summary.add(str(context.get("exception") or "out of resources"), loop)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


class BadRequestFilter(logging.Filter):
    """On the ``aiohttp.server`` logger: one line per malformed request, none of its text,
    at most one line per `LOG_INTERVAL` (with the number held back)."""

    def __init__(self) -> None:
        super().__init__()
        self._last = -LOG_INTERVAL
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Error handling request") or not record.exc_info:
            return True
        exc = record.exc_info[1]
        if type(exc).__module__ != "aiohttp.http_exceptions":
            return True  # a real crash: keep its traceback
        now = time.monotonic()
        if now - self._last < LOG_INTERVAL:
            self._held += 1
            return False
        held, self._held, self._last = self._held, 0, now
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "refused a malformed HTTP request from %s (%s)%s"
        record.args = (remote, type(exc).__name__, f"; {held} more since the last line" if held else "")
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def install_log_filters() -> None:
    """Put `BadRequestFilter` on aiohttp's server logger (once per process)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestFilter) for f in logger.filters):
        logger.addFilter(BadRequestFilter())
