"""Real servers for the checkpoint tests: ``rclone serve s3`` (and the gateway, when used)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ckpt_helpers import Remote

from farfeed.store.testing import serve_s3


@pytest.fixture
def s3_run(tmp_path: Path) -> Iterator[Remote]:
    """``s3://ckpt/runs/r1`` served by ``rclone serve s3`` from ``tmp_path/s3/ckpt/runs/r1``."""
    root = tmp_path / "s3"
    (root / "ckpt").mkdir(parents=True)
    with serve_s3(root) as endpoint:
        yield Remote("s3://ckpt/runs/r1", endpoint.store_options(), root / "ckpt" / "runs" / "r1")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Remote]:
    """A gateway over ``tmp_path/root`` (in a thread); the run area is ``checkpoints/run1``."""
    from farfeed.server import serve_in_thread

    root = tmp_path / "root"
    (root / "checkpoints").mkdir(parents=True)
    with serve_in_thread(root) as url:
        yield Remote(f"{url}/checkpoints/run1", {}, root / "checkpoints" / "run1")
