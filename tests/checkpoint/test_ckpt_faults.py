"""A gateway killed with SIGKILL mid-save: restarted, the save resumes its parts and commits;
gone for longer than the retry window, the save fails naming the URL and the cause, the
previous checkpoint still loads, and the next save succeeds.

    .venv/bin/python -m pytest tests/checkpoint/test_ckpt_faults.py -q --durations=0
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import torch

import farfeed.checkpoint as ckpt
from farfeed.errors import TransientError
from farfeed.server.process import GatewayProcess
from farfeed.wan import Link, WanThread

#: 64 KiB parts over 4 connections: 8 MB is 128 parts, ~2 s through the 4 MB/s link below.
PLAN = dict(min_part=64 * 1024, max_part=64 * 1024, min_connections=4, max_connections=4)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[GatewayProcess, str, Path]]:
    """A gateway process over ``tmp_path/root``, reached through a 4 MB/s emulated link:
    (the gateway, the run's URL through the link, the staging folder of uploads)."""
    root = tmp_path / "root"
    (root / "checkpoints").mkdir(parents=True)
    with GatewayProcess.start(root) as gw:
        parts = urlsplit(gw.url)
        assert parts.hostname is not None and parts.port is not None
        with WanThread(upstream=(parts.hostname, parts.port), link=Link(bandwidth=4e6)) as wan:
            yield gw, f"{wan.url_for(gw.url)}/checkpoints/run1", root / ".farfeed-uploads"


def _staged_parts(staging: Path) -> int:
    """Parts the gateway holds for certain (their record is written after the bytes are synced)."""
    return sum(1 for p in staging.glob("u-*/part-*.json") if p.stat().st_size > 0)


def _kill_mid_upload(gw: GatewayProcess, handle: ckpt.SaveHandle, staging: Path, *, parts: int) -> int:
    deadline = time.monotonic() + 60
    while (held := _staged_parts(staging)) < parts:
        assert not handle.done() and time.monotonic() < deadline, "the upload ended or never started"
        time.sleep(0.01)
    gw.kill()
    return held


def test_gateway_restarted_mid_save_resumes_the_parts(site: tuple[GatewayProcess, str, Path]) -> None:
    gw, url, staging = site
    state = {"w": torch.arange(2_000_000, dtype=torch.float32)}  # 8 MB
    handle = ckpt.save(state, url, step=1, transfer=ckpt.Transfer(**PLAN))  # type: ignore[arg-type]
    held = _kill_mid_upload(gw, handle, staging, parts=16)
    time.sleep(1.0)  # the storage host reboots
    gw.restart()
    info = handle.wait(timeout=120)
    assert info.step == 1
    assert handle.resumed_parts >= held  # what the gateway had synced was not sent again
    assert torch.equal(ckpt.load(f"{gw.url}/checkpoints/run1")["w"], state["w"])  # not via the slow link


def test_gateway_gone_for_good_fails_the_save_and_leaves_the_previous(
    site: tuple[GatewayProcess, str, Path],
) -> None:
    gw, url, staging = site
    plan = ckpt.Transfer(retry_for=2.0, **PLAN)  # type: ignore[arg-type]
    ckpt.save({"w": torch.ones(1000)}, url, step=1, transfer=plan).wait(timeout=60)
    handle = ckpt.save({"w": torch.zeros(2_000_000)}, url, step=2, transfer=plan)
    _kill_mid_upload(gw, handle, staging, parts=4)
    t0 = time.monotonic()
    with pytest.raises(TransientError) as info:
        handle.wait(timeout=60)
    assert time.monotonic() - t0 < 10  # the 2 s window, not a hang
    message = str(info.value)
    assert "gave up after 2." in message and "retry_for=2 s" in message
    assert url.split("/checkpoints")[0] in message and "last cause: " in message
    gw.restart()  # back, later: the run goes on
    latest = ckpt.latest(url)
    assert latest is not None and latest.step == 1
    assert torch.equal(ckpt.load(url)["w"], torch.ones(1000))
    ckpt.save({"w": torch.full((10,), 3.0)}, url, step=3, transfer=plan).wait(timeout=60)
    assert torch.equal(ckpt.load(url)["w"], torch.full((10,), 3.0))
