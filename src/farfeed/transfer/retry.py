"""One retry policy for every transfer: which errors, how many tries, which backoff.

Transient errors (`farfeed.errors.TransientError`: resets, timeouts, HTTP 5xx) are
retried; everything else (not found, access denied, bad request) is raised at once.
The wait before retry ``n`` is exponential with full jitter, so many workers that lost
the link together do not come back in lockstep.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from farfeed.errors import ConfigError, TransientError

T = TypeVar("T")
log = logging.getLogger("farfeed.transfer")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """``attempts`` tries in all; before retry ``n`` wait ``min(cap, base * 2**(n-1))``
    seconds, jittered down to half of that.

    >>> RetryPolicy(attempts=9, base=0.05, cap=2.0).delay(3)  # between 0.1 and 0.2 s
    """

    attempts: int = 4
    base: float = 0.2
    cap: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ConfigError(f"attempts must be an int >= 1, got {self.attempts!r}")
        if not self.base > 0 or not self.cap >= self.base:
            raise ConfigError(
                f"backoff needs base > 0 and cap >= base, got base={self.base!r} cap={self.cap!r}"
            )

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry ``retry`` (1, 2, ...)."""
        ceiling = min(self.cap, self.base * 2 ** (retry - 1))
        return ceiling / 2 + random.random() * ceiling / 2


#: Checkpoint and weights calls: a few quick tries (a store blip, not an outage); the
#: three waits add up to 1.4-2.8 s.
STORE_CALLS = RetryPolicy(attempts=4, base=0.4, cap=4.0)
#: Resuming an interrupted upload (a gateway restart, a cut link): 2.8-5.6 s of waits.
UPLOAD_RESUMES = RetryPolicy(attempts=4, base=0.8, cap=4.0)


async def retrying(
    call: Callable[[], Awaitable[T]], *, what: str, policy: RetryPolicy = STORE_CALLS
) -> T:
    """``await call()``; on `TransientError` wait ``policy.delay(n)`` and try again, up to
    ``policy.attempts`` tries in all, then raise the last error. ``what`` names the call
    in the warning logged for each retry."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return await call()
        except TransientError as exc:
            if attempt == policy.attempts:
                raise
            log.warning("%s failed (%s); retry %d of %d", what, exc, attempt, policy.attempts - 1)
            await asyncio.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")
