"""Shared pytest fixtures: a gateway root and a gateway serving it (in a thread, real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from farfeed.server import serve_in_thread


@pytest.fixture
def gateway_root(tmp_path: Path) -> Path:
    """An empty gateway ROOT (tmp_path/root) with its writable ``checkpoints/`` folder."""
    root = tmp_path / "root"
    (root / "checkpoints").mkdir(parents=True)
    return root


@pytest.fixture
def gateway_url(gateway_root: Path) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT``) of a gateway serving ``gateway_root``, no tokens."""
    with serve_in_thread(gateway_root) as url:
        yield url
