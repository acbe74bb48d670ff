"""Checkpoints through the farfeed gateway: chunked parallel upload, verified load, atomicity
under a killed uploader, resume after a cut link."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import torch
from helpers.stores import Remote
from helpers.torch_state import assert_same, tiny_state

import farfeed.checkpoint as ckpt
from farfeed.errors import CheckpointError
from farfeed.wan import Link, WanThread

SMALL_PARTS = ckpt.Transfer(min_part=64 * 1024)


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def test_round_trip_in_parts_with_retention(gateway: Remote) -> None:
    state = tiny_state(big=300_000)
    for step in (1, 2, 3):
        info = ckpt.save(state, gateway.url, step=step, keep=2, transfer=SMALL_PARTS, config={"s": step}).wait(timeout=60)
    assert info.url == f"{gateway.url}/step-000000000003"
    assert [i.step for i in ckpt.list_checkpoints(gateway.url)] == [2, 3]
    assert not (gateway.folder / "step-000000000001" / "manifest.json").exists()
    latest = ckpt.latest(gateway.url)
    assert latest is not None and latest.step == 3 and latest.config == {"s": 3}
    assert_same(state, ckpt.load(gateway.url, transfer=SMALL_PARTS))


def test_corrupt_part_on_the_gateway_is_named(gateway: Remote) -> None:
    ckpt.save({"w": torch.zeros(100_000)}, gateway.url, step=1, transfer=SMALL_PARTS).wait(timeout=60)
    ckpt.save({"w": torch.ones(100_000)}, gateway.url, step=2, transfer=SMALL_PARTS).wait(timeout=60)
    data = gateway.folder / "step-000000000002" / "tensors.safetensors"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    data.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"step-000000000002: part 3 .* corrupt"):
        ckpt.load(gateway.url, step=2, transfer=SMALL_PARTS)
    with pytest.warns(ckpt.CheckpointFallbackWarning, match="step-000000000002"):
        assert torch.equal(ckpt.load(gateway.url)["w"], torch.zeros(100_000))


CHILD = textwrap.dedent(
    """
    import sys, torch
    import farfeed.checkpoint as ckpt
    state = {"w": torch.full((1_500_000,), 2.0)}   # 6 MB: >= 3 s through a 2 MB/s link
    ckpt.save(state, sys.argv[1], step=2, background=False,
              transfer=ckpt.Transfer(min_part=64 * 1024, max_part=64 * 1024)).wait()
    print("finished")
    """
)


def test_killed_upload_leaves_previous_checkpoint_latest(gateway: Remote, tmp_path: Path) -> None:
    ckpt.save({"w": torch.full((1000,), 1.0)}, gateway.url, step=1).wait(timeout=60)
    staging = gateway.folder.parent.parent / ".farfeed-uploads"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    with WanThread(upstream=_address(gateway.url), link=Link(bandwidth=2e6)) as wan:
        child = subprocess.Popen([sys.executable, str(script), wan.url_for(gateway.url)], stdout=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while not any(p.is_file() and p.stat().st_size > 0 for p in staging.rglob("*")):
                assert child.poll() is None, "uploader ended before any part arrived"
                assert time.monotonic() < deadline, "no part arrived in 60 s"
                time.sleep(0.02)
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            out, _ = child.communicate()
    assert b"finished" not in out
    assert not (gateway.folder / "step-000000000002" / "manifest.json").exists()
    info = ckpt.latest(gateway.url)
    assert info is not None and info.step == 1
    assert torch.equal(ckpt.load(gateway.url)["w"], torch.full((1000,), 1.0))
    ckpt.save({"w": torch.zeros(3)}, gateway.url, step=2).wait(timeout=60)  # and life goes on
    assert ckpt.latest(gateway.url).step == 2  # type: ignore[union-attr]


def test_cut_link_mid_upload_resumes_without_resending(gateway: Remote) -> None:
    state = {"w": torch.arange(1_000_000, dtype=torch.float32)}  # 4 MB in 64 KiB parts
    plan = ckpt.Transfer(min_part=64 * 1024, max_part=64 * 1024, min_connections=4, max_connections=4)
    with WanThread(upstream=_address(gateway.url), link=Link(bandwidth=4e6)) as wan:
        url = wan.url_for(gateway.url)
        handle = ckpt.save(state, url, step=1, transfer=plan)
        staging = gateway.folder.parent.parent / ".farfeed-uploads"
        deadline = time.monotonic() + 60
        while sum(1 for p in staging.rglob("*") if p.is_file()) < 8:
            assert not handle.done() and time.monotonic() < deadline
            time.sleep(0.02)
        wan.emulator.cut(mode="reset", duration=1.0)  # longer than aiohttp's own one retry
        info = handle.wait(timeout=120)
    assert handle.resumed_parts >= 4  # parts that had arrived before the cut were kept
    assert info.step == 1
    assert torch.equal(ckpt.load(gateway.url)["w"], state["w"])
