"""Fixtures for the loader tests: one small packed image dataset per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from loader_helpers import make_image_dataset


@pytest.fixture(scope="session")
def image_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 train + 24 val JPEGs (24x24) in 64 KiB shards: a dataset folder on local disk."""
    return make_image_dataset(tmp_path_factory.mktemp("loader-data"), train=120, val=24)
