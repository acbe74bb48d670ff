"""Real servers for the store tests: ``rclone serve s3`` and ``rclone serve http``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from farfeed.store.testing import S3Endpoint, serve_http, serve_s3


@pytest.fixture
def files_root(tmp_path: Path) -> Path:
    """A folder served by the fixtures below; its subfolders are S3 buckets."""
    root = tmp_path / "served"
    (root / "bucket" / "ds" / "sub").mkdir(parents=True)
    (root / "bucket" / "ds" / "a.bin").write_bytes(bytes(range(256)) * 64)  # 16 KiB
    (root / "bucket" / "ds" / "sub" / "b.bin").write_bytes(b"hello world")
    return root


@pytest.fixture
def s3_server(files_root: Path) -> Iterator[S3Endpoint]:
    """``rclone serve s3`` over ``files_root`` (bucket ``bucket``)."""
    with serve_s3(files_root) as endpoint:
        yield endpoint


@pytest.fixture
def http_server(files_root: Path) -> Iterator[str]:
    """``rclone serve http`` over ``files_root``: a static server with Range support."""
    with serve_http(files_root) as url:
        yield url
