"""Outages mid-epoch: a cut link (5 s and 60 s, through the real `farfeed wan` emulator) and a
gateway killed with SIGKILL and restarted. The epoch completes, every sample exactly once,
bytes equal to the shard files, and the outage is logged as a few lines, not one per retry.

    .venv/bin/python -m pytest tests/loader/test_faults.py -q --durations=0
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from helpers.data import fixed_size_dataset
from helpers.samples import assert_exactly_once, assert_source_bytes, keys

from farfeed.errors import TransientError
from farfeed.loader import DataLoader, Dataset
from farfeed.server import serve_in_thread
from farfeed.server.process import GatewayProcess
from farfeed.wan import Link, WanProcess

#: Samples of 16 KiB under a 1 MiB budget: when the link goes, most of the epoch is not fetched.
SAMPLES = 300


@pytest.fixture(scope="module")
def blobs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ROOT/blobs``: 300 samples of 16 KiB (4.7 MB), more than the 1 MiB budget below."""
    root = tmp_path_factory.mktemp("faults")
    fixed_size_dataset(root / "blobs", samples=SAMPLES, sample_bytes=16 * 1024, seed=1)
    return root


@pytest.fixture(scope="module")
def wan_url(blobs_root: Path) -> Iterator[tuple[str, WanProcess]]:
    """The dataset's URL through ``farfeed wan`` (a child process, no delay) to a gateway."""
    with serve_in_thread(blobs_root) as url:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        with WanProcess.start(upstream=(parts.hostname, parts.port), link=Link()) as wan:
            yield wan.url_for(f"{url}/blobs"), wan


def _epoch_with_a_cut(
    url: str, wan: WanProcess, *, after: int, seconds: float
) -> tuple[list[dict[str, object]], float, Dataset]:
    """One in-process epoch; the link is cut (reset, refused) for ``seconds`` after ``after``
    samples. Returns the samples, the seconds from the cut to the epoch's end, the Dataset."""
    ds = Dataset(url, seed=3, memory_budget=1 << 20)
    got: list[dict[str, object]] = []
    cut_at = 0.0
    for sample in ds:
        got.append(sample)
        if len(got) == after:
            wan.cut(mode="reset", duration=seconds)
            cut_at = time.monotonic()
    return got, time.monotonic() - cut_at, ds


def _outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "farfeed.transfer"]


def test_a_5_s_link_cut_mid_epoch_is_ridden_out(
    blobs_root: Path, wan_url: tuple[str, WanProcess], caplog: pytest.LogCaptureFixture
) -> None:
    url, wan = wan_url
    with caplog.at_level(logging.WARNING, logger="farfeed.transfer"):
        got, after_cut, ds = _epoch_with_a_cut(url, wan, after=50, seconds=5.0)
    assert after_cut >= 4.5  # the rest of the epoch did need the link
    assert_exactly_once(keys(got), blobs_root / "blobs")
    assert_source_bytes(got, blobs_root / "blobs")
    assert ds.stats()["retries"] > 0
    lines = _outage_lines(caplog)
    link = url.split("/blobs")[0]
    assert len(lines) == 2, lines  # once down, once back: not a line per retry
    assert lines[0].startswith(f"link to {link} down since ") and "retrying for up to 120 s" in lines[0]
    assert lines[1].startswith(f"link to {link} back after ")


def test_a_60_s_link_cut_mid_epoch_is_ridden_out(
    blobs_root: Path, wan_url: tuple[str, WanProcess], caplog: pytest.LogCaptureFixture
) -> None:
    """The long one (~62 s): a minute without a link, within the default 120 s window."""
    url, wan = wan_url
    with caplog.at_level(logging.WARNING, logger="farfeed.transfer"):
        got, after_cut, _ = _epoch_with_a_cut(url, wan, after=20, seconds=60.0)
    assert after_cut >= 59.5
    assert_exactly_once(keys(got), blobs_root / "blobs")
    assert_source_bytes(got, blobs_root / "blobs")
    lines = _outage_lines(caplog)
    assert "down since" in lines[0] and "back after" in lines[-1]
    still = [line for line in lines[1:-1] if "still down after" in line]
    assert 4 <= len(still) <= 7 and len(still) == len(lines) - 2, lines  # about one per 10 s
    assert float(lines[-1].rsplit(" ", 2)[-2]) >= 59.0  # "back after 60.3 s"


def test_window_spent_names_the_samples_the_url_and_the_cause(
    wan_url: tuple[str, WanProcess],
) -> None:
    url, wan = wan_url
    ds = Dataset(url, seed=3, memory_budget=1 << 20, retry_for=0.5)
    wan.cut(mode="reset", duration=2.0)
    t0 = time.monotonic()
    with pytest.raises(TransientError) as info:
        list(ds)
    assert time.monotonic() - t0 < 1.8  # the short window, not the cut, ended it
    message = str(info.value)
    assert "reading sample '" in message and url.split("/blobs")[0] in message
    assert "gave up after 0.5 s of retries" in message and "retry_for=0.5 s" in message
    assert "last cause: " in message and "connect" in message.split("last cause: ")[1]  # the cause
    time.sleep(max(0.0, t0 + 2.1 - time.monotonic()))  # the cut ends before the next test


def test_gateway_killed_and_restarted_mid_epoch_delivers_each_sample_once(blobs_root: Path) -> None:
    with GatewayProcess.start(blobs_root) as gw:
        ds = Dataset(f"{gw.url}/blobs", seed=3, memory_budget=1 << 20)
        loader = DataLoader(ds, batch_size=10, num_workers=2)
        got: list[dict[str, object]] = []
        for k, batch in enumerate(loader):
            got += [
                {"__key__": key, "__index__": int(i), "bin": data}
                for key, i, data in zip(batch["__key__"], batch["__index__"], batch["bin"], strict=True)
            ]
            if k == 5:  # about a fifth of the epoch: most of it is not fetched yet
                gw.kill()
                restart = threading.Timer(1.0, gw.restart)
                restart.start()
        restart.join()
        assert ds.stats()["retries"] > 0  # the outage was felt, and recovered from
    assert len(got) == SAMPLES
    assert_exactly_once(keys(got), blobs_root / "blobs")
    assert_source_bytes(got, blobs_root / "blobs")
