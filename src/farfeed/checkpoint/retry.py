"""Retry a store call on transient errors (timeouts, resets, HTTP 5xx) with a short backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from farfeed.errors import TransientError

T = TypeVar("T")
log = logging.getLogger("farfeed.checkpoint")

#: Tries of one call (the first and the retries) before its TransientError is raised.
ATTEMPTS = 4


async def retrying(call: Callable[[], Awaitable[T]], *, what: str, attempts: int = ATTEMPTS) -> T:
    """``await call()``, again after 0.2, 0.4, 0.8 s if it raised `TransientError`."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except TransientError as exc:
            if attempt == attempts:
                raise
            log.warning("%s failed (%s); retry %d of %d", what, exc, attempt, attempts - 1)
            await asyncio.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")
