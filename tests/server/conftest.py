"""The gateway's bad-input world: a ROOT with a dataset, an old checkpoint and symlinks that
lead out of it, a sibling folder that must never change, and a running gateway; and a small
real disk that fills up."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.data import fake_dataset
from helpers.world import BOTH_TOKEN, READ_TOKEN, WRITE_TOKEN, World, snapshot

from farfeed.server import ServerLimits, TokenTable, serve_in_thread


def build_world(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(b"secret")
    (outside / "sub" / "data.bin").write_bytes(b"outside data")
    files = fake_dataset(root, "ds")
    (root / "ds" / ".hidden").write_bytes(b"hidden")
    os.symlink(outside / "secret.txt", root / "ds" / "link-out")
    os.symlink(outside / "sub", root / "ds" / "dirlink-out")
    (root / "checkpoints" / "run1").mkdir(parents=True)
    (root / "checkpoints" / "run1" / "model.bin").write_bytes(b"old model")
    os.symlink(outside / "sub", root / "checkpoints" / "escape")
    return root, outside, files


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Anonymous gateway (small body limits: 64 KiB batch body, 1 MiB parts) over the bad-input world."""
    root, outside, files = build_world(tmp_path)
    limits = ServerLimits(max_batch_body=65_536, max_part_bytes=1 << 20)
    with serve_in_thread(root, limits=limits) as url:
        yield World(url, root, outside, files, snapshot(tmp_path, skip=root))


@pytest.fixture
def token_world(tmp_path: Path) -> Iterator[World]:
    """The same world behind tokens: READ_TOKEN (read), WRITE_TOKEN (write), BOTH_TOKEN (both)."""
    root, outside, files = build_world(tmp_path)
    tokens = TokenTable({READ_TOKEN: {"read"}, WRITE_TOKEN: {"write"}, BOTH_TOKEN: {"read", "write"}})
    with serve_in_thread(root, tokens=tokens) as url:
        yield World(url, root, outside, files, snapshot(tmp_path, skip=root))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``small_disk(size)`` mounts a tmpfs of ``size`` bytes and returns its folder: a real file
    system whose writes fail with ENOSPC once it is full. Mounting needs root (CI runs as root;
    elsewhere run pytest under ``unshare -rm``, where you are root of your own mounts)."""
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.fail(
                "this test fills a real disk, a small tmpfs, which needs root to mount; run it as "
                f"root or under `unshare -rm` ({done.stderr.strip()})"
            )
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
