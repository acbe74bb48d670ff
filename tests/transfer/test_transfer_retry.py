"""`RetryPolicy` and `retrying`: checked settings, jittered capped backoff, only transient errors retried."""

from __future__ import annotations

import logging
import re

import pytest

from farfeed.errors import (
    AccessDeniedError,
    ConfigError,
    NotFoundError,
    StoreError,
    TransientError,
)
from farfeed.transfer import RetryPolicy, retrying

#: Fast waits: at most 2 ms before each retry.
QUICK = RetryPolicy(attempts=4, base=0.001, cap=0.002)


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"attempts": 0}, 0),
        ({"attempts": 2.5}, 2.5),
        ({"base": 0.0}, 0.0),
        ({"base": -0.5}, -0.5),
        ({"base": 1.0, "cap": 0.25}, 0.25),
    ],
)
def test_policy_rejects_bad_values_quoting_them(kwargs: dict[str, float], bad: float) -> None:
    with pytest.raises(ConfigError, match=re.escape(repr(bad))):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_delay_is_jittered_between_half_and_all_of_its_ceiling_and_capped() -> None:
    policy = RetryPolicy(attempts=9, base=0.05, cap=1.0)
    for retry, ceiling in [(1, 0.05), (2, 0.1), (3, 0.2), (5, 0.8), (6, 1.0), (30, 1.0)]:
        waits = [policy.delay(retry) for _ in range(300)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), (retry, min(waits), max(waits))
        assert max(waits) - min(waits) > ceiling / 10, retry  # jittered, not one fixed wait


async def test_transient_errors_are_retried_until_the_call_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TransientError(f"reset {calls}")
        return "done"

    with caplog.at_level(logging.WARNING, logger="farfeed.transfer"):
        assert await retrying(flaky, what="reading shard-7", policy=QUICK) == "done"
    assert calls == 3
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and all("reading shard-7" in w for w in warnings), warnings


async def test_gives_up_after_the_attempts_raising_the_last_error() -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise TransientError(f"timeout {calls}")

    with pytest.raises(TransientError, match="timeout 3"):
        await retrying(down, what="x", policy=RetryPolicy(attempts=3, base=0.001, cap=0.002))
    assert calls == 3


@pytest.mark.parametrize("error", [NotFoundError, AccessDeniedError, StoreError])
async def test_other_store_errors_are_raised_at_once(error: type[StoreError]) -> None:
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise error("no", url="mem://x")

    with pytest.raises(error):
        await retrying(refused, what="x", policy=QUICK)
    assert calls == 1
