"""Real servers for the checkpoint tests: ``rclone serve s3``, and the gateway as a run area."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.stores import Remote

from farfeed.store.testing import serve_s3


@pytest.fixture
def s3_run(tmp_path: Path) -> Iterator[Remote]:
    """``s3://ckpt/runs/r1`` served by ``rclone serve s3`` from ``tmp_path/s3/ckpt/runs/r1``."""
    root = tmp_path / "s3"
    (root / "ckpt").mkdir(parents=True)
    with serve_s3(root) as endpoint:
        yield Remote("s3://ckpt/runs/r1", endpoint.store_options(), root / "ckpt" / "runs" / "r1")


@pytest.fixture
def gateway(gateway_root: Path, gateway_url: str) -> Remote:
    """The shared gateway (over ``gateway_root``, in a thread); the run area is ``checkpoints/run1``."""
    return Remote(f"{gateway_url}/checkpoints/run1", {}, gateway_root / "checkpoints" / "run1")
