"""The gateway's bad-input world: its tokens, file snapshots, and the check that it is unharmed."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from helpers.http import call

READ_TOKEN = "r" * 32
WRITE_TOKEN = "w" * 32
BOTH_TOKEN = "b" * 32

#: path -> (size, mtime_ns, sha256 of a file or the target of a symlink)
Snapshot = dict[str, tuple[int, int, str]]


def snapshot(top: Path, *, skip: Path) -> Snapshot:
    """Every file and symlink under ``top`` except under ``skip``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if Path(dirpath) == skip or skip in Path(dirpath).parents:
            dirnames[:] = []
            continue
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in filenames + links:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if os.path.islink(p):
                digest = os.readlink(p)
            elif os.path.isfile(p):
                digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            else:
                digest = ""
            out[p] = (st.st_size, st.st_mtime_ns, digest)
    return out


@dataclass
class World:
    """A served ROOT and the untouchable folder beside it."""

    url: str
    root: Path
    outside: Path
    files: dict[str, bytes]
    before: Snapshot

    def unharmed(self, *, headers: dict[str, str] | None = None) -> None:
        """Nothing outside ROOT changed, the old checkpoint is intact, and the server still answers."""
        assert snapshot(self.root.parent, skip=self.root) == self.before
        assert (self.root / "checkpoints" / "run1" / "model.bin").read_bytes() == b"old model"
        status, _, body = call(self.url, "GET", "/healthz")
        assert (status, body) == (200, b"ok")
        status, _, body = call(self.url, "GET", "/ds/shard-00000.tar", headers=headers)
        assert status == 200 and body == self.files["ds/shard-00000.tar"]
