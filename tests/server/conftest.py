"""The gateway's bad-input world: a ROOT with a dataset, an old checkpoint and symlinks that
lead out of it, a sibling folder that must never change, and a running gateway."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gw_helpers import call, make_dataset, snapshot

from farfeed.server import ServerLimits, TokenTable, serve_in_thread

READ_TOKEN = "r" * 32
WRITE_TOKEN = "w" * 32
BOTH_TOKEN = "b" * 32


@dataclass
class World:
    """A served ROOT and the untouchable folder beside it."""

    url: str
    root: Path
    outside: Path
    files: dict[str, bytes]
    before: dict[str, tuple[int, int, str]]

    def unharmed(self, *, headers: dict[str, str] | None = None) -> None:
        """Nothing outside ROOT changed, the old checkpoint is intact, and the server still answers."""
        assert snapshot(self.root.parent, skip=self.root) == self.before
        assert (self.root / "checkpoints" / "run1" / "model.bin").read_bytes() == b"old model"
        status, _, body = call(self.url, "GET", "/healthz")
        assert (status, body) == (200, b"ok")
        status, _, body = call(self.url, "GET", "/ds/shard-00000.tar", headers=headers)
        assert status == 200 and body == self.files["ds/shard-00000.tar"]


def build_world(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(b"secret")
    (outside / "sub" / "data.bin").write_bytes(b"outside data")
    files = make_dataset(root, "ds")
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
