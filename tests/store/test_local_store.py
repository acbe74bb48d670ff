"""LocalStore against real files in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from farfeed.errors import BadRequestError, ConfigError, NotFoundError
from farfeed.store import ByteRange, LocalStore, ObjectInfo, open_store


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "a.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "ds" / "sub").mkdir()
    (tmp_path / "ds" / "sub" / "b.bin").write_bytes(b"hello world")
    (tmp_path / "ds" / ".hidden").write_bytes(b"x")
    (tmp_path / "secret.txt").write_bytes(b"outside")
    return tmp_path / "ds"


async def test_open_store_picks_local_for_paths_and_file_urls(root: Path) -> None:
    for url in (str(root), f"file://{root}"):
        async with open_store(url) as store:
            assert isinstance(store, LocalStore)
            assert await store.read("sub/b.bin") == b"hello world"


async def test_read_ranges_and_read_many_order(root: Path) -> None:
    store = await open_store(str(root))
    data = (root / "a.bin").read_bytes()
    assert await store.read("a.bin", 10, 5) == data[10:15]
    assert await store.read("a.bin", 1000) == data[1000:]
    assert await store.read("a.bin", 1024, 0) == b""
    ranges = [ByteRange("sub/b.bin", 6, 5), ByteRange("a.bin", 500, 3), ByteRange("a.bin", 2, 2)]
    assert await store.read_many(ranges) == [b"world", data[500:503], data[2:4]]
    assert [x async for x in store.iter_many(ranges)] == [b"world", data[500:503], data[2:4]]


async def test_errors_are_translated(root: Path) -> None:
    store = LocalStore(root)
    with pytest.raises(NotFoundError, match="missing.bin"):
        await store.read("missing.bin")
    with pytest.raises(NotFoundError):
        await store.size("sub")
    with pytest.raises(BadRequestError, match="outside"):
        await store.read("a.bin", 1020, 10)
    with pytest.raises(ConfigError, match=r"\.\."):
        await store.read("../secret.txt")
    with pytest.raises(ConfigError, match="relative"):
        await store.read("/etc/passwd")
    os.symlink(root.parent / "secret.txt", root / "link.txt")
    with pytest.raises(NotFoundError, match="outside"):
        await store.read("link.txt")


async def test_write_is_atomic_and_reads_back(root: Path) -> None:
    store = LocalStore(root / "ckpt")
    await store.write("run1/step-1/model.bin", b"old")
    await store.write("run1/step-1/model.bin", b"new bytes")
    assert await store.read("run1/step-1/model.bin") == b"new bytes"
    assert await store.size("run1/step-1/model.bin") == 9

    # a failing part generator leaves the old object and no temp file behind
    async def parts():  # type: ignore[no-untyped-def]
        yield b"partial"
        raise RuntimeError("producer died")

    with pytest.raises(RuntimeError):
        await store.write_parts("run1/step-1/model.bin", parts())
    assert await store.read("run1/step-1/model.bin") == b"new bytes"
    assert os.listdir(root / "ckpt" / "run1" / "step-1") == ["model.bin"]
    result = await store.write_parts("run1/big.bin", [b"ab", memoryview(b"cd"), bytearray(b"ef")])
    assert (result.size, result.parts) == (6, 3)
    assert await store.read("run1/big.bin") == b"abcdef"


async def test_list_and_delete(root: Path) -> None:
    store = LocalStore(root)
    assert await store.list() == [ObjectInfo("a.bin", 1024), ObjectInfo("sub/b.bin", 11)]
    assert await store.list("sub/") == [ObjectInfo("sub/b.bin", 11)]
    assert await store.list("a") == [ObjectInfo("a.bin", 1024)]
    assert await store.list("nope/") == []
    await store.delete("a.bin")
    await store.delete("a.bin")  # missing: not an error
    assert [o.path for o in await store.list()] == ["sub/b.bin"]


def test_unknown_scheme_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"'ftp'.*s3://"):
        open_store("ftp://example.com/x")
    with pytest.raises(ConfigError, match="connections"):
        open_store("/tmp", connections=0)
    with pytest.raises(TypeError):
        open_store("/tmp", bogus=1)  # type: ignore[call-arg]
