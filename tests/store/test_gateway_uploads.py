"""GatewayStore's chunked uploads against the real gateway: parts in place under a declared
part_size (re-cut when the caller's parts do not fit it), joined parts, resume, failures."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from farfeed.errors import NotFoundError
from farfeed.store import GatewayStore, open_store
from farfeed.store._parts import PartUploads, recut

MiB = 1024 * 1024


def requests_seen(url: str, endpoint: str) -> int:
    """How many requests of ``endpoint`` the gateway at ``url`` answered (from /metrics),
    read once no other request is in flight."""
    deadline = time.monotonic() + 10
    while True:
        text = urllib.request.urlopen(f"{url}/metrics").read().decode()
        if re.search(r"^farfeed_inflight_requests 1$", text, re.MULTILINE) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    found = re.findall(rf'farfeed_requests_total\{{endpoint="{endpoint}",status="\d+"\}} (\d+)', text)
    return sum(map(int, found))


def staged_uploads(root: Path) -> list[dict[str, Any]]:
    """meta.json and file names of every upload staged under ``root``."""
    staging = root / ".farfeed-uploads"
    return [
        {**json.loads((d / "meta.json").read_text()), "files": sorted(os.listdir(d))}
        for d in staging.iterdir()
        if d.is_dir()
    ]


def recorded(folder: Path, part: int) -> bool:
    """Whether the gateway recorded an in-place part as arrived (its record is written last)."""
    record = folder / f"part-{part}.json"
    return record.exists() and record.stat().st_size > 0


async def test_uniform_parts_are_written_in_place(gateway_url: str, gateway_root: Path) -> None:
    parts = [os.urandom(100_000) for _ in range(5)] + [os.urandom(777)]
    seen: list[list[dict[str, Any]]] = []

    async def produce() -> AsyncIterator[bytes]:
        for n, part in enumerate(parts):
            if n == 3:  # the upload has started by now: look at it
                seen.append(staged_uploads(gateway_root))
            yield part

    async with open_store(f"{gateway_url}/checkpoints/run1") as store:
        result = await store.write_parts("model.bin", produce(), concurrency=3)
        assert (result.size, result.parts, result.parts_skipped) == (500_777, 6, 0)
        assert await store.read("model.bin") == b"".join(parts)
    [[upload]] = seen
    assert upload["part_size"] == 100_000 and "data" in upload["files"]
    assert not [f for f in upload["files"] if re.fullmatch(r"part-\d+", f)]  # no per-part files
    assert requests_seen(gateway_url, "upload_get") == 0  # its own new upload: nothing to ask
    assert list((gateway_root / ".farfeed-uploads").iterdir()) == []


async def test_irregular_parts_arerecut(gateway_url: str, gateway_root: Path) -> None:
    sizes = [3000, 1000, 5000, 10, 2990, 0, 7]
    parts = [os.urandom(n) for n in sizes]
    async with open_store(f"{gateway_url}/checkpoints/run1", part_size=4096) as store:
        result = await store.write_parts("a.bin", parts)  # first part no smaller than the second: 3000
        assert (result.size, result.parts) == (12_007, 5)
        assert await store.read("a.bin") == b"".join(parts)
        result = await store.write_parts("b.bin", parts[1:])  # 1000 then 5000: the store's 4096
        assert (result.size, result.parts) == (9_007, 3)
        assert await store.read("b.bin") == b"".join(parts[1:])
        result = await store.write_parts("c.bin", [b"", b""])  # no bytes: an empty object
        assert (result.size, result.parts) == (0, 0) and await store.read("c.bin") == b""


async def test_recut_copies_only_where_a_boundary_moves() -> None:
    async def parts(*chunks: bytes) -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    exact, double = b"a" * 4, b"b" * 8
    pieces = [p async for p in recut(parts(exact, double, b"cc", b"ddd", b"e"), 4)]
    assert [bytes(p) for p in pieces] == [b"aaaa", b"bbbb", b"bbbb", b"ccdd", b"de"]
    assert isinstance(pieces[0], memoryview) and pieces[0].obj is exact  # passed on, not copied
    assert isinstance(pieces[2], memoryview) and pieces[2].obj is double
    passed = [p async for p in recut(parts(b"xy", b"z"), None)]
    assert passed == [b"xy", b"z"]


async def test_resume_in_place_sends_only_missing_parts(gateway_url: str, gateway_root: Path) -> None:
    parts = [os.urandom(100_000) for _ in range(4)] + [os.urandom(5)]
    target = gateway_root / "checkpoints" / "run1" / "model.bin"
    async with open_store(f"{gateway_url}/checkpoints/run1") as store:
        assert isinstance(store, GatewayStore)
        await store.write("model.bin", b"previous")
        upload_id = await store.start_upload("model.bin", part_size=100_000)
        folder = gateway_root / ".farfeed-uploads" / upload_id

        async def failing() -> AsyncIterator[bytes]:
            yield parts[0]
            yield parts[1]
            deadline = time.monotonic() + 10
            while not (recorded(folder, 0) and recorded(folder, 1)):  # both arrived, then the cut
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            raise ConnectionError("link cut")

        with pytest.raises(ConnectionError):
            await store.write_parts("model.bin", failing(), upload_id=upload_id)
        assert requests_seen(gateway_url, "upload_get") == 0  # started just before: not asked
        assert target.read_bytes() == b"previous"  # nothing committed
        state = await store.upload_state(upload_id)
        assert state["part_size"] == 100_000 and sorted(state["parts"]) == ["0", "1"]
        await store.upload_part(upload_id, 3, b"garbage")  # wrong: must be sent again
        result = await store.write_parts("model.bin", parts, upload_id=upload_id, concurrency=2)
        assert (result.parts, result.parts_skipped) == (5, 2)
        assert requests_seen(gateway_url, "upload_get") == 2  # the state above, and the resume
        assert target.read_bytes() == b"".join(parts)


async def test_resumed_join_upload_sends_only_missing_parts(gateway_url: str, gateway_root: Path) -> None:
    parts = [os.urandom(100_000) for _ in range(5)]
    target = gateway_root / "checkpoints" / "run1" / "model.bin"
    async with open_store(f"{gateway_url}/checkpoints/run1") as store:
        assert isinstance(store, GatewayStore)
        await store.write("model.bin", b"previous")
        upload_id = await store.start_upload("model.bin")  # no part_size: parts of any size, joined
        await store.upload_part(upload_id, 0, parts[0])
        await store.upload_part(upload_id, 3, parts[3])
        await store.upload_part(upload_id, 1, b"garbage")  # wrong: must be sent again

        def failing():  # type: ignore[no-untyped-def]
            yield parts[0]
            yield parts[1]
            raise ConnectionError("link cut")

        with pytest.raises(ConnectionError):
            await store.write_parts("model.bin", failing(), upload_id=upload_id)
        assert target.read_bytes() == b"previous"  # nothing committed
        state = await store.upload_state(upload_id)
        assert state["part_size"] is None and sorted(state["parts"]) == ["0", "1", "3"]
        result = await store.write_parts("model.bin", parts, upload_id=upload_id, concurrency=2)
        assert (result.parts, result.parts_skipped) == (5, 2)
        assert target.read_bytes() == b"".join(parts)


async def test_big_write_goes_in_parallel_parts(gateway_url: str, gateway_root: Path) -> None:
    payload = os.urandom(3 * MiB + 77)
    async with open_store(
        f"{gateway_url}/checkpoints/run1", multipart_threshold=MiB, part_size=MiB // 2
    ) as store:
        await store.write("big.bin", payload)  # 7 parts
        assert (gateway_root / "checkpoints" / "run1" / "big.bin").read_bytes() == payload
        assert requests_seen(gateway_url, "upload_part") == 7
    assert list((gateway_root / ".farfeed-uploads").iterdir()) == []


def _unretrieved(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Collect the loop's "exception was never retrieved" reports from now on."""
    seen: list[str] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(str(context.get("message"))))
    return seen


async def test_every_failed_part_is_retrieved(gateway_url: str) -> None:
    seen = _unretrieved(asyncio.get_running_loop())
    async with open_store(f"{gateway_url}/checkpoints/run1") as store:
        assert isinstance(store, GatewayStore)
        upload_id = await store.start_upload("gone.bin", part_size=1000)
        request = urllib.request.Request(f"{gateway_url}/_farfeed/uploads/{upload_id}", method="DELETE")
        urllib.request.urlopen(request).close()  # aborted behind the store's back: every PUT is 404
        with pytest.raises(NotFoundError):
            await store.write_parts("gone.bin", [b"x" * 1000] * 24, upload_id=upload_id, concurrency=8)
    gc.collect()
    await asyncio.sleep(0)
    assert seen == []


async def test_window_retrieves_every_failure() -> None:
    seen = _unretrieved(asyncio.get_running_loop())

    async def fail(n: int) -> None:
        raise RuntimeError(f"part {n}")

    window = PartUploads(2)
    with pytest.raises(RuntimeError, match="part [01]"):
        for n in range(4):
            await window.add(lambda n=n: fail(n))  # type: ignore[misc]
    await window.cancel()
    gc.collect()
    await asyncio.sleep(0)
    assert seen == []
