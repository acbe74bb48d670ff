"""Helpers shared by the format tests: read spans from disk, a real directory `Store`."""

from __future__ import annotations

from pathlib import Path

from farfeed.errors import NotFoundError
from farfeed.format import SampleIndex
from farfeed.store.base import ObjectInfo, Store


def read_span(dataset: Path, index: SampleIndex, i: int) -> bytes:
    """The bytes of sample ``i``'s span, read from its shard file."""
    name, offset, size = index.span(i)
    with open(dataset / name, "rb") as f:
        f.seek(offset)
        return f.read(size)


class DirStore(Store):
    """A minimal real Store over a local folder (the store package has its own, fuller one)."""

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

    async def write(self, path: str, data: bytes) -> None:
        (self.root / path).write_bytes(data)

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        files = sorted(p for p in self.root.rglob("*") if p.is_file())
        rel = [(p.relative_to(self.root).as_posix(), p.stat().st_size) for p in files]
        return [ObjectInfo(r, s) for r, s in rel if r.startswith(prefix)]

    async def size(self, path: str) -> int:
        return (self.root / path).stat().st_size

    async def delete(self, path: str) -> None:
        (self.root / path).unlink(missing_ok=True)
