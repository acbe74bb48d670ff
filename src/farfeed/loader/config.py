"""`FetchConfig`: how one Dataset reaches its data, decided once in the process that makes it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from farfeed.transfer.retry import RETRY_FOR_S, RetryPolicy


@dataclass(frozen=True, slots=True)
class FetchConfig:
    """How to reach the data: URLs (primary first, then replicas) and fetch settings.

    >>> FetchConfig(urls=("http://a:8470/imagenet", "http://b:8470/imagenet"), spread=True)

    ``store_options`` are `farfeed.store.open_store`'s keyword arguments; ``gateway_info``
    maps each URL already known to be a farfeed gateway to its ``/_farfeed/info``, and
    each http(s) URL known to be a static server to False (learned when the index was
    read), so workers open it without a probe. ``retry_for``: seconds a
    read keeps retrying transient errors (`farfeed.transfer.RetryPolicy`). ``spread``:
    send requests to every URL at once (see `farfeed.loader.replicas`), not only to the
    first one that is up.
    """

    urls: tuple[str, ...]
    token: str | None = None
    store_options: dict[str, Any] = field(default_factory=dict)
    memory_budget: int = 512 * 2**20
    retry_for: float = RETRY_FOR_S
    spread: bool = False
    verify: bool = True
    gateway_info: Mapping[str, dict[str, Any] | Literal[False]] = field(default_factory=dict)

    @property
    def retry(self) -> RetryPolicy:
        """The loader's retry policy: ``retry_for`` seconds, the default backoff (50 ms
        doubling up to 2 s: quick after a lost packet, within 2 s of a link coming back)."""
        return RetryPolicy(retry_for=self.retry_for)
