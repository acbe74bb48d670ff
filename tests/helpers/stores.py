"""Stores for tests: a minimal folder store, a counting (and failing) one, a remote run area."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farfeed.errors import NotFoundError, TransientError
from farfeed.store import LocalStore
from farfeed.store.base import Chunk, ObjectInfo, Store


class DirStore(Store):
    """A minimal real Store over a local folder (the store package's `LocalStore` is fuller)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            with open(self.root / path, "rb") as f:
                f.seek(offset)
                return f.read() if length is None else f.read(length)
        except FileNotFoundError:
            raise NotFoundError("no such object", url=path) from None

    async def write(self, path: str, data: Chunk) -> None:
        (self.root / path).write_bytes(data)

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        files = sorted(p for p in self.root.rglob("*") if p.is_file())
        rel = [(p.relative_to(self.root).as_posix(), p.stat().st_size) for p in files]
        return [ObjectInfo(r, s) for r, s in rel if r.startswith(prefix)]

    async def size(self, path: str) -> int:
        return (self.root / path).stat().st_size

    async def delete(self, path: str) -> None:
        (self.root / path).unlink(missing_ok=True)


class CountingStore(LocalStore):
    """A `LocalStore` that records every ``read`` as (path, offset, length); the first
    ``fail`` reads raise `TransientError` instead (a link blip), and are recorded too."""

    def __init__(self, root: str | os.PathLike[str], *, fail: int = 0) -> None:
        super().__init__(root)
        self.reads: list[tuple[str, int, int | None]] = []
        self.fail = fail

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        self.reads.append((path, offset, length))
        if len(self.reads) <= self.fail:
            raise TransientError(f"blip {len(self.reads)} of {self.fail}", url=path)
        return await super().read(path, offset, length)


@dataclass(frozen=True)
class Remote:
    """A run area reachable by URL, the options to reach it, and the folder behind it."""

    url: str
    store_options: dict[str, Any]
    folder: Path
