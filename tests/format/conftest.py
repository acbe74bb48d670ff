"""Fixtures for the format tests: one small packed image dataset shared by a module."""

from __future__ import annotations

from pathlib import Path

import pytest

from farfeed.format.testing import make_packed_dataset


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 train + 4 val sample images packed with small (~1 MB) shards."""
    return make_packed_dataset(
        tmp_path_factory.mktemp("packed"), count=40, seed=0, shard_size="1MB"
    )
