"""Fixtures for the trainer recipes: one small packed image dataset per session, and a gateway
serving it (in a thread of the test process; the recipes' ranks read it over loopback HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.data import packed_images

from farfeed.server import serve_in_thread


@pytest.fixture(scope="session")
def image_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 train + 24 val JPEGs (24x24, 4 classes) in 64 KiB shards, on local disk."""
    root = tmp_path_factory.mktemp("trainers-root")
    return packed_images(root / "images", train=120, val=24, src=root / "src")


@pytest.fixture(scope="session")
def served_images(image_dataset: Path) -> Iterator[tuple[str, Path]]:
    """(URL of `image_dataset` on a gateway, its folder); the gateway's ``/checkpoints`` is
    writable (each test names its own run there)."""
    (image_dataset.parent / "checkpoints").mkdir(exist_ok=True)
    with serve_in_thread(image_dataset.parent) as url:
        yield f"{url}/images", image_dataset
