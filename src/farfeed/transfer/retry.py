"""One retry policy for every transfer: which errors, for how long, which backoff, what is logged.

Transient errors (`farfeed.errors.TransientError`: resets, refused connections, timeouts,
HTTP 5xx) are retried; everything else (not found, access denied, bad request, a full
disk) is raised at once. Retries are measured in **time**, not attempts: a call keeps
trying for up to ``retry_for`` seconds after its first failure (default 120 s, long enough
for a routing flap or a gateway restart). The wait before retry ``n`` grows exponentially
from ``base`` up to ``cap`` with full jitter, so workers that lost the link together do
not come back in lockstep, and a link that is back is used again within ``cap`` seconds.

While a link is down, `LinkLog` says so once ("link to URL down since ..., retrying for up
to 120 s (cause)"), then at most every 10 s, and once more when it is back: never one
line per retry. When the time is spent, the error names the call, the URL and the cause.

The loader (`farfeed.loader.reader`), checkpoints and weights all retry through `Retries`
(directly, or via `retrying`), so a fix here lands everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableSequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from farfeed.errors import ConfigError, StoreError, TransientError
from farfeed.store import open_store
from farfeed.store.base import Store

T = TypeVar("T")
log = logging.getLogger("farfeed.transfer")

#: Default seconds a call keeps retrying after its first failure.
RETRY_FOR_S = 120.0
#: Seconds between two "still down" lines about one outage.
LOG_EVERY_S = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Retry transient errors for up to ``retry_for`` seconds after the first failure;
    before retry ``n`` wait ``min(cap, base * 2**(n-1))`` seconds, jittered down to half.

    >>> RetryPolicy(retry_for=120.0).delay(3)   # between 0.1 and 0.2 s
    >>> RetryPolicy(retry_for=0)                # no retries: the first error is raised
    """

    retry_for: float = RETRY_FOR_S
    base: float = 0.05
    cap: float = 2.0

    def __post_init__(self) -> None:
        w = self.retry_for
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w < float("inf"):
            raise ConfigError(f"retry_for must be a number of seconds >= 0, got {w!r}")
        if not self.base > 0 or not self.cap >= self.base:
            raise ConfigError(
                f"backoff needs base > 0 and cap >= base, got base={self.base!r} cap={self.cap!r}"
            )

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry ``retry`` (1, 2, ...)."""
        ceiling = min(self.cap, self.base * 2 ** min(retry - 1, 60))
        return ceiling / 2 + random.random() * ceiling / 2


#: The policy of checkpoints, weights and the loader unless told otherwise.
DEFAULT_RETRY = RetryPolicy()


def link_of(url: str | None) -> str:
    """The link a URL travels over, for log lines: ``scheme://host:port`` (no credentials,
    no path); a local path or an unknown URL stays as it is."""
    if not url:
        return "the store"
    head = url.split(" ", 1)[0]
    if "://" not in head:
        return head
    parts = urlsplit(head)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}" if host else head


@dataclass
class _Outage:
    since: float  # clock time of the first failure
    since_wall: float  # time.time() of the first failure (for the log line)
    cause: str = ""


class LinkLog:
    """Says that a link is down, that it is still down (at most every ``every`` seconds),
    and that it is back; one instance per process unless ``shared`` is given.

    ``shared``: two floats that several processes share (a `multiprocessing.RawArray`;
    the loader gives one to all DataLoader workers of a rank), so the rank logs one line
    per interval, not one per worker: ``[0]`` the clock time of the last line, ``[1]`` 1.0
    while a "down" line is out without its "back" line. A race between two processes
    costs at most a duplicate line.
    """

    def __init__(
        self,
        *,
        every: float = LOG_EVERY_S,
        shared: MutableSequence[float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every = every
        self._shared = shared if shared is not None else [0.0, 0.0]
        self._clock = clock
        self._down: dict[str, _Outage] = {}

    def is_down(self, link: str) -> bool:
        return link in self._down

    def down(self, link: str, cause: str, *, retry_for: float, left: float) -> None:
        """A call over ``link`` failed with ``cause``; it will retry for ``left`` more seconds."""
        now = self._clock()
        outage = self._down.get(link)
        if outage is None:
            outage = self._down[link] = _Outage(since=now, since_wall=time.time())
        outage.cause = cause
        shared = self._shared
        if shared[0] and now - shared[0] < self.every:
            return
        if shared[1]:
            log.warning(
                "link to %s still down after %.0f s (%s); retrying for up to %.0f s more",
                link, now - outage.since, cause, max(left, 0.0),
            )  # fmt: skip
        else:
            since = time.strftime("%H:%M:%S", time.localtime(outage.since_wall))
            log.warning(
                "link to %s down since %s, retrying for up to %g s (%s)",
                link, since, retry_for, cause,
            )  # fmt: skip
        shared[0], shared[1] = now, 1.0

    def forget(self, link: str) -> None:
        """A call over ``link`` gave up: the next failure there starts a new outage (and line)."""
        if self._down.pop(link, None) is not None:
            self._shared[0] = self._shared[1] = 0.0

    def now(self) -> float:
        """This log's clock: what ``up(started=)`` is measured on."""
        return self._clock()

    def up(self, link: str, *, started: float | None = None) -> None:
        """A call over ``link`` succeeded: if it was down, say it is back (once per outage).

        ``started``: when the call was sent (`now`). One sent before the outage began
        can still succeed (its reply was already on its way or in a socket's buffer) and
        says nothing about the link now: the outage goes on."""
        outage = self._down.get(link)
        if outage is None or (started is not None and started < outage.since):
            return
        del self._down[link]
        shared = self._shared
        if shared[1]:
            shared[0], shared[1] = 0.0, 0.0
            log.warning("link to %s back after %.1f s", link, self._clock() - outage.since)


#: The process's log of links, for calls that are not given their own.
LINKS = LinkLog()


@dataclass
class Retries:
    """The retries of one call: when it first failed, how many tries, the URLs tried.

    >>> retries = Retries(policy, what="reading shard-7")
    >>> await asyncio.sleep(retries.wait_after(exc, url=store.url))  # raises once time is spent

    ``what`` (a string, or a function giving one: formatted only when needed) names the
    call in the error raised when ``policy.retry_for`` is spent.
    """

    policy: RetryPolicy
    what: str | Callable[[], str]
    links: LinkLog = field(default_factory=lambda: LINKS)
    tries: int = 0
    first: float = 0.0
    tried: list[str] = field(default_factory=list)

    def wait_after(self, exc: BaseException, *, url: str | None = None) -> float:
        """Note a transient failure; the seconds to wait before the next try. Raises
        `TransientError` naming the call, the URL(s) and the cause once ``retry_for`` is spent."""
        now = time.monotonic()
        if self.tries == 0:
            self.first = now
        self.tries += 1
        named = isinstance(exc, StoreError) and exc.url is not None
        where = url or (exc.url if isinstance(exc, StoreError) else None)
        if where and where not in self.tried:
            self.tried.append(where)
        cause = str(exc) or type(exc).__name__
        elapsed = now - self.first
        left = self.policy.retry_for - elapsed
        if left <= 0:
            self.links.forget(link_of(where))
            what = self.what() if callable(self.what) else self.what
            also = f" (tried {', '.join(self.tried)})" if len(self.tried) > 1 else ""
            raise TransientError(
                f"{what}: gave up after {elapsed:.1f} s of retries ({self.tries} tries, "
                f"retry_for={self.policy.retry_for:g} s){also}; last cause: {cause}",
                url=None if named else url,
            ) from exc
        self.links.down(link_of(where), cause, retry_for=self.policy.retry_for, left=left)
        return min(self.policy.delay(self.tries), left)

    def succeeded(self, url: str | None = None) -> None:
        """The call went through: a link that was down is back."""
        for where in self.tried if url is None else [url]:
            self.links.up(link_of(where))


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    policy: RetryPolicy = DEFAULT_RETRY,
    url: str | None = None,
) -> T:
    """``await call()``; on `TransientError` wait (`RetryPolicy.delay`) and try again until
    ``policy.retry_for`` seconds have passed since the first failure, then raise an error
    naming ``what``, the URL and the last cause. ``url`` names the store for the log lines
    when the error does not."""
    retries: Retries | None = None
    while True:
        try:
            result = await call()
        except TransientError as exc:
            if retries is None:
                retries = Retries(policy, what=what)
            await asyncio.sleep(retries.wait_after(exc, url=url))
            continue
        if retries is not None:
            retries.succeeded()
        return result


@asynccontextmanager
async def open_retrying(
    url: str, *, policy: RetryPolicy = DEFAULT_RETRY, **options: Any
) -> AsyncIterator[Store]:
    """``async with open_retrying(url, **options) as store``: `farfeed.store.open_store`, its
    opening retried like any call (opening an http(s) URL asks the server whether it is a
    gateway: a gateway restarting right then must not fail the job), closed at the end."""
    store = await retrying(lambda: open_store(url, **options), what=f"opening {url}", policy=policy)
    async with store:
        yield store
