"""Whole-object writes in the writable area: ``PUT`` (staged, fsynced, renamed) and ``DELETE``."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from farfeed.server.auth import needs
from farfeed.server.context import gateway
from farfeed.server.reclaim import dest_key
from farfeed.server.responses import ApiError, json_response
from farfeed.server.staging import StagingFile, parse_xxh64, prune_empty_folders, publish


@needs("write")
async def put_object(request: web.Request) -> web.StreamResponse:
    """``PUT /checkpoints/PATH``: stream the body to a staging file, check it, rename it into place."""
    gw = gateway(request)
    path = request.match_info["path"]
    final = gw.paths.resolve_write(path)
    expected = parse_xxh64(request.headers.get("X-Farfeed-Xxh64"))
    dest = "/".join(p for p in path.split("/") if p)  # as a chunked upload names it
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, gw.reclaim_before_save, dest)
    staged = StagingFile(gw.paths.staging, prefix=f"put-{dest_key(dest)}-", on_full=gw.reclaim_space)
    try:
        try:
            await staged.write_from(request.content.iter_any())
        finally:
            gw.metrics.bytes_received += staged.size
        digest = await staged.finish()
        if expected is not None and digest != expected:
            raise ApiError(409, f"checksum mismatch for {path!r}: body xxh64 {digest}, header says {expected}; nothing stored")
        await loop.run_in_executor(None, publish, staged.path, final)
    except BaseException:
        await staged.discard()
        raise
    return json_response({"path": gw.paths.relpath(final), "size": staged.size, "xxh64": digest}, status=201)


@needs("write")
async def delete_object(request: web.Request) -> web.StreamResponse:
    """``DELETE /checkpoints/PATH``: remove one object, and the folders it leaves empty (up to
    ``checkpoints/``); a missing object is fine too (204)."""
    paths = gateway(request).paths
    final = paths.resolve_write(request.match_info["path"])
    try:
        os.unlink(final)
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        return web.Response(status=204)  # a parent is a file: the object cannot exist
    prune_empty_folders(os.path.dirname(final), stop=paths.checkpoints_real)
    return web.Response(status=204)
