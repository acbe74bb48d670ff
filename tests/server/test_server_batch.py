"""Batch-get against a real gateway: random ranges over several files come back framed and exact."""

from __future__ import annotations

import json
import random
from pathlib import Path

import aiohttp
from helpers.data import fake_dataset
from helpers.http import FRAME, call, parse_frames

from farfeed.server import ServerLimits, serve_in_thread
from farfeed.server.batch import plan_blocks


async def test_batch_of_256_random_ranges(gateway_root: Path, gateway_url: str) -> None:
    files = fake_dataset(gateway_root, sizes=(400_000, 300_000, 250_000, 120_000))
    rng = random.Random(7)
    ranges = []
    for _ in range(256):
        path = rng.choice(sorted(files))
        offset = rng.randrange(len(files[path]))
        ranges.append([path, offset, rng.randrange(len(files[path]) - offset + 1)])
    ranges.append([next(iter(files)), 0, 0])  # an empty item is fine
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{gateway_url}/_farfeed/batch", json={"ranges": ranges}) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "application/x-farfeed-batch"
            body = await r.read()
            assert int(r.headers["Content-Length"]) == len(body)
    frames = parse_frames(body)
    assert [i for i, _ in frames] == list(range(len(ranges)))
    for (_, payload), (path, offset, length) in zip(frames, ranges, strict=True):
        assert payload == files[path][offset : offset + length]


def test_large_items_span_many_blocks(gateway_root: Path) -> None:
    """Items bigger than a block, and many small ones, cross block boundaries intact."""
    files = fake_dataset(gateway_root, sizes=(1_000_000, 5_000))
    big, small = sorted(files)
    ranges = [[big, 3, 999_990], *[[small, i, 100] for i in range(0, 4900, 50)], [big, 0, 1_000_000]]
    with serve_in_thread(gateway_root, limits=ServerLimits(batch_block_bytes=65_536)) as url:
        status, _, body = call(url, "POST", "/_farfeed/batch", body=json.dumps({"ranges": ranges}).encode())
    assert status == 200
    frames = parse_frames(body)
    assert [p for _, p in frames] == [files[p][o : o + n] for p, o, n in ranges]


def test_plan_blocks_coalesces_and_splits() -> None:
    items = [("a", 0, 10), ("b", 5, 3), ("c", 0, 250)]
    blocks = list(plan_blocks(items, 100))
    assert all(size <= 100 + FRAME.size for _, size in blocks)
    assert sum(size for _, size in blocks) == 3 * FRAME.size + 263 + FRAME.size
    first_ops, first_size = blocks[0]
    assert first_size == 100  # a and b coalesced, then c fills the block ...
    assert first_ops[1] == ("a", 0, 10) and first_ops[3] == ("b", 5, 3) and first_ops[5] == ("c", 0, 51)
    assert blocks[1][0][0] == ("c", 51, 100)  # ... and c continues in the next one


async def test_object_shrinking_mid_batch_cuts_the_stream(gateway_root: Path) -> None:
    """Bytes that cannot be read after the headers went out end the response without a trailer."""
    (gateway_root / "ds").mkdir()
    shard = gateway_root / "ds" / "big.bin"
    shard.write_bytes(b"z" * 40_000_000)
    ranges = [["ds/big.bin", i * 1_000_000, 1_000_000] for i in range(40)]
    with serve_in_thread(gateway_root, limits=ServerLimits(batch_block_bytes=65_536)) as url:
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{url}/_farfeed/batch", json={"ranges": ranges}) as r:
                assert r.status == 200
                first = await r.content.readexactly(1_000_000)
                with open(shard, "r+b") as f:
                    f.truncate(0)
                got = bytearray(first)
                try:
                    async for chunk in r.content.iter_any():
                        got += chunk
                except aiohttp.ClientPayloadError:
                    pass
        assert len(got) < int(r.headers["Content-Length"])
        assert not got.endswith(FRAME.pack(0xFFFFFFFF, 0))
        assert call(url, "GET", "/healthz")[0] == 200
