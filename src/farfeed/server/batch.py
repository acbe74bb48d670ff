"""``POST /_farfeed/batch``: many byte ranges in one round trip, streamed back as frames.

Every item is checked before the first byte goes out (shape, types, path, bounds). On a
plain TCP connection the frames are then sent with ``sendfile`` from worker threads
(`farfeed.server.batch_sendfile`: ranges of 16 KiB and more never pass through Python).
Over TLS, or where the socket cannot be reached, they are read in blocks of about
``ServerLimits.batch_block_bytes`` in a worker thread (``preadv`` straight into the block,
small items coalesced) while the previous block is written to the transport.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from typing import Union

from aiohttp import web

from farfeed.server.auth import needs
from farfeed.server.batch_sendfile import (
    FRAME,
    TRAILER_INDEX,
    Item,
    OpenFiles,
    send_frames,
    sendfile_socket,
)
from farfeed.server.context import gateway
from farfeed.server.limits import ServerLimits
from farfeed.server.paths import GatewayPaths
from farfeed.server.responses import ApiError, parse_json

log = logging.getLogger("farfeed.server")

CONTENT_TYPE = "application/x-farfeed-batch"

Op = Union[bytes, Item]  # a frame header, or a range to read


@needs("read")
async def batch_get(request: web.Request) -> web.StreamResponse:
    """Check every item, then stream ``[index][length][payload]`` frames and the trailer."""
    gw = gateway(request)
    limits = gw.limits
    if request.content_length is not None and request.content_length > limits.max_batch_body:
        raise ApiError(413, f"batch body of {request.content_length} bytes is over the {limits.max_batch_body}-byte limit")
    body = await request.read()  # the app's client_max_size is max_batch_body: 413 beyond
    gw.metrics.bytes_received += len(body)
    wanted = parse_batch(body, limits)
    loop = asyncio.get_running_loop()
    items = await loop.run_in_executor(None, check_items, gw.paths, wanted)
    total = sum(12 + length for _, _, length in items) + 12
    resp = web.StreamResponse(status=200)
    resp.content_type = CONTENT_TYPE
    resp.content_length = total
    await resp.prepare(request)
    files = OpenFiles()
    sent = False
    try:
        transport = request.transport
        files.sock = None if transport is None else sendfile_socket(transport)
        if files.sock is not None:
            await send_frames(request, resp, files.sock, items, files)
        else:
            await _stream(resp, items, limits.batch_block_bytes, files)
        sent = True
    except (ConnectionError, asyncio.CancelledError):
        raise
    except Exception as exc:  # headers are out: the only honest answer is to cut the stream
        log.warning("batch response cut short: %s: %s", exc.__class__.__name__, exc)
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError(f"batch response cut short: {exc}") from exc
    finally:
        if sent:  # every job has ended: closing a few files takes microseconds
            files.close()
        else:  # a job may still be reading: wait for it in a thread, not on the loop
            await loop.run_in_executor(None, files.close)
    await resp.write_eof()
    return resp


def parse_batch(body: bytes, limits: ServerLimits) -> list[tuple[str, int, int]]:
    """Decode and type-check a batch body; 400 naming the first bad item."""
    obj = parse_json(body, "batch body")
    if not isinstance(obj, dict) or set(obj) != {"ranges"}:
        got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise ApiError(400, f'batch body must be {{"ranges": [[path, offset, length], ...]}}, got {got!r}')
    ranges = obj["ranges"]
    if not isinstance(ranges, list):
        raise ApiError(400, f"'ranges' must be a list, got {type(ranges).__name__}")
    if len(ranges) > limits.max_batch_ranges:
        raise ApiError(400, f"too many ranges: {len(ranges)} > max_batch_ranges {limits.max_batch_ranges}")
    out: list[tuple[str, int, int]] = []
    total = 0
    for i, item in enumerate(ranges):
        if not isinstance(item, list) or len(item) != 3:
            raise ApiError(400, f"range {i} must be [path, offset, length], got {item!r}"[:300])
        path, offset, length = item
        if not isinstance(path, str):
            raise ApiError(400, f"range {i}: path must be a string, got {path!r}"[:300])
        for name, value in (("offset", offset), ("length", length)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ApiError(400, f"range {i} ({path!r}): {name} must be an integer, got {value!r}"[:300])
            if value < 0:
                raise ApiError(400, f"range {i} ({path!r}): {name} must be >= 0, got {value}"[:300])
        total += length
        if total > limits.max_batch_bytes:
            raise ApiError(400, f"ranges ask for more than max_batch_bytes {limits.max_batch_bytes} (over at range {i})")
        out.append((path, offset, length))
    return out


def check_items(paths: GatewayPaths, wanted: list[tuple[str, int, int]]) -> list[Item]:
    """Resolve each path once and check each range against its object's size (404 / 416)."""
    sizes: dict[str, tuple[str, int]] = {}
    items: list[Item] = []
    for i, (path, offset, length) in enumerate(wanted):
        known = sizes.get(path)
        if known is None:
            try:
                real = paths.resolve(path)
                known = sizes[path] = (real, os.stat(real).st_size)
            except ApiError as exc:
                raise ApiError(exc.status, f"range {i}: {exc.message}") from None
            except (FileNotFoundError, NotADirectoryError):
                raise ApiError(404, f"range {i}: no such object: {path!r}") from None
        real, size = known
        if offset + length > size:
            raise ApiError(
                416, f"range {i} ({path!r}): bytes {offset}..{offset + length} are outside the {size}-byte object"
            )
        items.append((real, offset, length))
    return items


def plan_blocks(items: list[Item], block: int) -> Iterator[tuple[list[Op], int]]:
    """Group frame headers and payload ranges into blocks of about ``block`` bytes."""
    ops: list[Op] = []
    used = 0
    for index, (real, offset, length) in enumerate(items):
        ops.append(FRAME.pack(index, length))
        used += FRAME.size
        while length:
            if used >= block:
                yield ops, used
                ops, used = [], 0
            n = min(length, block - used)
            ops.append((real, offset, n))
            used, offset, length = used + n, offset + n, length - n
    ops.append(FRAME.pack(TRAILER_INDEX, 0))
    yield ops, used + FRAME.size


def read_block(ops: list[Op], size: int, files: OpenFiles) -> bytearray:
    """Fill one block: headers copied, ranges read with ``preadv`` straight into place."""
    buf = bytearray(size)
    with files.lock:
        _fill(memoryview(buf), ops, files)
    return buf


def _fill(view: memoryview, ops: list[Op], files: OpenFiles) -> None:
    pos = 0
    for op in ops:
        if isinstance(op, bytes):
            view[pos : pos + len(op)] = op
            pos += len(op)
            continue
        real, offset, n = op
        fd = files.fd(real)
        end = pos + n
        while pos < end:
            got = os.preadv(fd, [view[pos:end]], offset)
            if got <= 0:
                raise OSError(f"{real} shrank while being sent")
            pos += got
            offset += got


async def _stream(resp: web.StreamResponse, items: list[Item], block: int, files: OpenFiles) -> None:
    """Read block k+1 in a thread while block k is written to the socket."""
    loop = asyncio.get_running_loop()
    blocks = plan_blocks(items, block)
    first = next(blocks)
    job: asyncio.Future[bytearray] | None = loop.run_in_executor(None, read_block, first[0], first[1], files)
    while job is not None:
        data = await job
        following = next(blocks, None)
        job = None if following is None else loop.run_in_executor(None, read_block, following[0], following[1], files)
        await resp.write(data)
