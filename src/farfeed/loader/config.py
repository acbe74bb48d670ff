"""`FetchConfig`: how one Dataset reaches its data, decided once in the process that makes it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from farfeed.transfer.retry import RetryPolicy

#: The loader's backoff between tries: quick at first (a lost packet), up to 2 s (an outage).
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0


@dataclass(frozen=True, slots=True)
class FetchConfig:
    """How to reach the data: URLs (primary first, then replicas) and fetch settings.

    >>> FetchConfig(urls=("http://a:8470/imagenet", "http://b:8470/imagenet"))

    ``store_options`` are `farfeed.store.open_store`'s keyword arguments; ``gateway_info``
    maps each URL already known to be a farfeed gateway to its ``/_farfeed/info`` (learned
    when the index was read), so workers open it without a probe.
    """

    urls: tuple[str, ...]
    token: str | None = None
    store_options: dict[str, Any] = field(default_factory=dict)
    memory_budget: int = 512 * 2**20
    retries: int = 8
    verify: bool = True
    gateway_info: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def retry(self) -> RetryPolicy:
        """``retries`` after the first try, with the loader's backoff."""
        return RetryPolicy(attempts=self.retries + 1, base=BACKOFF_BASE_S, cap=BACKOFF_CAP_S)
