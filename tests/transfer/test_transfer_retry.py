"""`RetryPolicy`, `Retries`, `retrying` and `LinkLog`: retries measured in time, jittered capped
backoff, only transient errors retried, and a few clear log lines per outage (not one per retry)."""

from __future__ import annotations

import logging
import multiprocessing as mp
import re
import time

import pytest

from farfeed.errors import (
    AccessDeniedError,
    ConfigError,
    NotFoundError,
    StoreError,
    TransientError,
)
from farfeed.transfer import Retries, RetryPolicy, retrying
from farfeed.transfer.retry import LinkLog, link_of

#: Fast waits: at most 2 ms before each retry, for up to 5 s.
QUICK = RetryPolicy(retry_for=5.0, base=0.001, cap=0.002)
URL = "http://127.0.0.1:8470/checkpoints/run1"


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"retry_for": -1.0}, -1.0),
        ({"retry_for": True}, True),
        ({"retry_for": "2m"}, "2m"),
        ({"retry_for": float("inf")}, float("inf")),
        ({"base": 0.0}, 0.0),
        ({"base": -0.5}, -0.5),
        ({"base": 1.0, "cap": 0.25}, 0.25),
    ],
)
def test_policy_rejects_bad_values_quoting_them(kwargs: dict[str, float], bad: float) -> None:
    with pytest.raises(ConfigError, match=re.escape(repr(bad))):
        RetryPolicy(**kwargs)


def test_default_window_rides_out_a_gateway_restart() -> None:
    assert RetryPolicy().retry_for == 120.0


def test_delay_is_jittered_between_half_and_all_of_its_ceiling_and_capped() -> None:
    policy = RetryPolicy(base=0.05, cap=1.0)
    for retry, ceiling in [(1, 0.05), (2, 0.1), (3, 0.2), (5, 0.8), (6, 1.0), (3000, 1.0)]:
        waits = [policy.delay(retry) for _ in range(300)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), (retry, min(waits), max(waits))
        assert max(waits) - min(waits) > ceiling / 10, retry  # jittered, not one fixed wait


def test_link_of_keeps_scheme_host_and_port_only() -> None:
    assert link_of("http://:s3cret@10.0.0.2:8470/ds (/_farfeed/batch)") == "http://10.0.0.2:8470"
    assert link_of("/data/ds") == "/data/ds"
    assert link_of(None) == "the store"


async def test_transient_errors_are_retried_until_the_call_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 6:
            raise TransientError(f"reset {calls}", url=f"{URL}/step-7")
        return "done"

    with caplog.at_level(logging.WARNING, logger="farfeed.transfer"):
        assert await retrying(flaky, what="reading step-7", policy=QUICK) == "done"
    assert calls == 6
    lines = [r.getMessage() for r in caplog.records]
    # five failures, two lines: down (with the window and the cause), then back
    assert len(lines) == 2, lines
    assert lines[0].startswith("link to http://127.0.0.1:8470 down since ")
    assert "retrying for up to 5 s" in lines[0] and "reset 1" in lines[0]
    assert lines[1].startswith("link to http://127.0.0.1:8470 back after ")


async def test_gives_up_when_the_window_is_spent_naming_the_call_url_and_cause() -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise TransientError(f"connection refused {calls}")

    policy = RetryPolicy(retry_for=0.3, base=0.01, cap=0.05)
    t0 = time.monotonic()
    with pytest.raises(TransientError) as info:
        await retrying(down, what="upload of step-7", policy=policy, url=URL)
    elapsed = time.monotonic() - t0
    message = str(info.value)
    assert 0.3 <= elapsed < 2.0
    assert message.startswith("upload of step-7: gave up after 0.3 s of retries")
    assert "retry_for=0.3 s" in message and f"connection refused {calls}" in message
    assert URL in message  # named by the error, since the cause did not
    assert calls > 3


async def test_retry_for_zero_raises_the_first_error() -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise TransientError("reset", url=URL)

    with pytest.raises(TransientError, match="gave up after 0.0 s .*1 tries.*reset"):
        await retrying(down, what="x", policy=RetryPolicy(retry_for=0))
    assert calls == 1


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


def test_a_long_outage_logs_one_line_per_interval_not_one_per_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    links = LinkLog(every=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="farfeed.transfer"):
        for _ in range(600):  # a retry every 0.1 s for 60 s
            links.down("http://a:1", "refused", retry_for=120.0, left=120.0 - (now[0] - 1000.0))
            now[0] += 0.1
        links.up("http://a:1")
    lines = [r.getMessage() for r in caplog.records]
    assert 6 <= len(lines) <= 8, lines  # down, ~5 x still down, back
    assert "down since" in lines[0]
    assert all("still down after" in line and "refused" in line for line in lines[1:-1])
    assert lines[-1] == "link to http://a:1 back after 60.0 s"


def test_a_reply_to_a_call_sent_before_the_outage_does_not_end_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Seen on a link cut with resets: one read's reply was already in its socket when a
    second read failed; its success logged "back after 0.0 s", then "down" again."""
    now = [1000.0]
    links = LinkLog(clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="farfeed.transfer"):
        before = links.now()
        now[0] += 0.5
        links.down("http://a:1", "reset", retry_for=120.0, left=120.0)
        links.up("http://a:1", started=before)  # sent before the outage: says nothing
        assert links.is_down("http://a:1")
        now[0] += 5.0
        retried = links.now()
        now[0] += 0.1
        links.up("http://a:1", started=retried)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and lines[1] == "link to http://a:1 back after 5.1 s", lines


def test_workers_sharing_a_log_say_each_outage_once(caplog: pytest.LogCaptureFixture) -> None:
    shared = mp.RawArray("d", 2)  # what a rank's DataLoader workers share
    workers = [LinkLog(shared=shared) for _ in range(8)]
    with caplog.at_level(logging.WARNING, logger="farfeed.transfer"):
        for log in workers:
            log.down("http://a:1", "reset", retry_for=120.0, left=120.0)
        for log in workers:
            log.up("http://a:1")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "down since" in lines[0] and "back after" in lines[1], lines


async def test_retries_name_every_url_tried_when_giving_up() -> None:
    retries = Retries(RetryPolicy(retry_for=0.05, base=0.01, cap=0.01), what="reading sample 'x'")
    with pytest.raises(TransientError, match=r"tried http://a:1/ds, http://b:2/ds\)"):
        for k in range(1000):
            url = ("http://a:1/ds", "http://b:2/ds")[k % 2]
            time.sleep(retries.wait_after(TransientError("reset"), url=url))
