"""Fixtures for the loader tests: one small packed image dataset per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.data import packed_images


@pytest.fixture(scope="session")
def image_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 train + 24 val JPEGs (24x24) in 64 KiB shards: a dataset folder on local disk."""
    return packed_images(tmp_path_factory.mktemp("loader-data") / "images", train=120, val=24)
