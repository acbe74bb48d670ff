"""Fixtures for the format tests: one small packed image dataset shared by a module."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.data import packed_images


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 train + 4 val sample images (10 classes) in ``TMP/images``, packed with small
    (~1 MB) shards into ``TMP/dataset``."""
    tmp = tmp_path_factory.mktemp("packed")
    return packed_images(
        tmp / "dataset", src=tmp / "images", train=40, val=4, classes=10, look="sample",
        shard_size="1MB",
    )  # fmt: skip
