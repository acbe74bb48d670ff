"""The gateway's batch-get, client side: split a request to the server's limits, then
read the framed response incrementally (docs/HTTP_API.md, ``POST /_farfeed/batch``)."""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncGenerator, Sequence

import aiohttp
import numpy as np

from farfeed.errors import StoreError, TransientError

FRAME = struct.Struct(">IQ")
_FRAME_DTYPE = np.dtype([("index", ">u4"), ("length", ">u8")])  # FRAME's layout, packed
TRAILER_INDEX = 0xFFFFFFFF
CONTENT_TYPE = "application/x-farfeed-batch"
#: The server accepts request bodies up to 8 MiB; stay well under it.
MAX_BODY_BYTES = 6 * 1024 * 1024


def plan_batches(
    items: Sequence[tuple[str, int, int]], *, max_ranges: int, max_bytes: int
) -> list[list[int]]:
    """Split item indices into consecutive groups that each fit one batch request.

    A single item larger than ``max_bytes`` gets a group of its own (sent as a range GET).
    """
    if len(items) <= max_ranges and sum(i[2] for i in items) <= max_bytes:
        longest = max((len(p) for p in {i[0] for i in items}), default=0)
        if len(items) * (4 * longest + 48) <= MAX_BODY_BYTES:  # (UTF-8: <= 4 bytes a char)
            return [list(range(len(items)))] if items else []
    groups: list[list[int]] = []
    current: list[int] = []
    current_bytes = current_body = 0
    for i, (path, _offset, length) in enumerate(items):
        body = len(path.encode()) + 48  # JSON overhead per item, generously
        if current and (
            len(current) >= max_ranges
            or current_bytes + length > max_bytes
            or current_body + body > MAX_BODY_BYTES
        ):
            groups.append(current)
            current, current_bytes, current_body = [], 0, 0
        current.append(i)
        current_bytes += length
        current_body += body
    if current:
        groups.append(current)
    return groups


def batch_body(items: Sequence[tuple[str, int, int]]) -> bytes:
    """The JSON request body for these (root-relative path, offset, length) items:
    ``{"ranges":[[path,offset,length],...]}``. Each path is JSON-quoted once, however many
    of its ranges there are (a request holds hundreds of ranges of a few shards)."""
    quoted: dict[str, str] = {}
    parts = []
    for path, offset, length in items:
        q = quoted.get(path)
        if q is None:
            q = quoted[path] = json.dumps(path)
        parts.append(f"[{q},{int(offset)},{int(length)}]")
    return ('{"ranges":[' + ",".join(parts) + "]}").encode()


def frame_headers(lengths: Sequence[int]) -> bytes:
    """The frame headers a batch response to items of these ``lengths`` carries, in order,
    with the trailer's: what the receiver compares its headers with."""
    n = len(lengths)
    table = np.empty(n + 1, dtype=_FRAME_DTYPE)
    table["index"][:n] = np.arange(n)
    table["length"][:n] = lengths
    table[n] = (TRAILER_INDEX, 0)
    return table.tobytes()


async def read_frames(
    resp: aiohttp.ClientResponse, lengths: Sequence[int], *, url: str
) -> AsyncGenerator[bytes, None]:
    """Yield each item's payload as its frame arrives; check order, lengths and the trailer.

    A stream that ends early, or whose frame headers are not the ones expected (a corrupted
    or cut link), raises `TransientError`: the request is worth retrying.
    """
    content_type = resp.headers.get("Content-Type", "")
    if not content_type.startswith(CONTENT_TYPE):
        raise StoreError(
            f"batch-get answered with Content-Type {content_type!r}, not {CONTENT_TYPE!r}", url=url
        )
    stream = resp.content
    for expected, length in enumerate(lengths):
        index, size = FRAME.unpack(await stream.readexactly(FRAME.size))
        if index != expected or size != length:
            raise TransientError(
                f"malformed batch frame: expected item {expected} of {length} bytes, "
                f"got item {index} of {size} bytes",
                url=url,
            )
        yield await stream.readexactly(size) if size else b""
    index, size = FRAME.unpack(await stream.readexactly(FRAME.size))
    if index != TRAILER_INDEX or size != 0:
        raise TransientError(f"batch response has no trailer after {len(lengths)} items", url=url)
    if await stream.read(1):
        raise TransientError("batch response has bytes after its trailer", url=url)
