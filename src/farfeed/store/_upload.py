"""Chunked, resumable uploads to the gateway (``/_farfeed/uploads``): parts go up in
parallel over several connections, each with its xxh64, then one commit publishes them.

Uploads declare a ``part_size`` when they can (every part but the last exactly that long):
the gateway then writes each part in place and the commit is a rename, not a copy.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import xxhash

from farfeed.errors import ConfigError, StoreError
from farfeed.store._http import HttpClient, check_status, translated
from farfeed.store._parts import PartUploads, adopted_part_size, peek, recut
from farfeed.store._paths import clean_relpath
from farfeed.store.base import Chunk, Parts, Store, UploadResult, aiter_parts
from farfeed.store.options import StoreOptions

#: Upload ids a store remembers as started by it with nothing sent yet (oldest forgotten first).
FRESH_IDS = 1024


class GatewayUploads(Store):
    """The upload half of `GatewayStore`: `write_parts` and the five upload calls under it."""

    origin: str
    prefix: str
    options: StoreOptions
    _http: HttpClient
    #: upload id -> its part_size, for uploads this store started and sent nothing to yet
    _fresh: dict[str, int | None]

    def _full(self, path: str) -> tuple[str, str]:
        """(root-relative path on the gateway, URL for messages) of a store-relative path."""
        rel = clean_relpath(path)
        return (f"{self.prefix}/{rel}" if self.prefix else rel), f"{self.url}/{rel}"

    async def write_parts(
        self, path: str, parts: Parts, *, concurrency: int = 4, upload_id: str | None = None
    ) -> UploadResult:
        """Upload object ``path`` from ``parts``, ``concurrency`` parts at once, then commit
        it atomically.

        Without ``upload_id`` a new upload is started (declaring the size of the first part
        as its part_size, so the gateway writes in place) and aborted if anything fails. To
        make an upload resumable, start it yourself (`start_upload`), pass its id, and on
        failure call again with the same id and the same parts: parts the gateway already
        holds (same size and xxh64) are not sent again. Parts must not change once yielded.
        With a part_size declared, parts of another size are re-cut to it (copying only
        where a boundary moves), so `UploadResult.parts` counts the parts actually sent.
        """
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if upload_id is not None:
            _uid(upload_id)
        full, display = self._full(path)
        source = aiter_parts(parts)
        held: dict[int, tuple[int, str]] = {}
        uid = upload_id
        if upload_id is None:
            head, source = await peek(source, 2)
            part_size: int | None = adopted_part_size(head, self.options.part_size)
        elif upload_id in self._fresh:  # just started here: nothing held, no need to ask
            part_size = self._fresh.pop(upload_id)
        else:
            part_size, held = await self._held_parts(upload_id, full)
        window = PartUploads(concurrency)
        digest = xxhash.xxh64()
        size = count = skipped = 0
        try:
            async with aclosing(recut(source, part_size)) as pieces:
                async for piece in pieces:
                    part_hash = xxhash.xxh64(piece).hexdigest()
                    digest.update(piece)
                    size += len(piece)
                    if held.get(count) == (len(piece), part_hash):
                        skipped += 1
                    else:
                        if uid is None:
                            uid = await self._create(full, part_size)
                        await window.add(_send(self, uid, count, piece, part_hash))
                    count += 1
            await window.join()
            if uid is None:  # no bytes at all: an empty object is a plain PUT
                await self.write(path, b"")
                return UploadResult(path, 0, digest.hexdigest(), 0)
            # in place, each part's xxh64 was checked as it arrived: a whole-object check would
            # cost the gateway a read of the object; joining reads it anyway, so check there
            whole = None if part_size else digest.hexdigest()
            committed = await self.commit_upload(uid, parts=count, xxh64=whole)
        except BaseException:
            await window.cancel()
            if upload_id is None and uid is not None:
                await asyncio.shield(self._abort_quietly(uid))
            raise
        if int(committed.get("size", size)) != size:
            raise StoreError(
                f"gateway committed {committed.get('size')} bytes, sent {size}", url=display
            )
        return UploadResult(path, size, digest.hexdigest(), count, skipped)

    async def start_upload(self, path: str, *, part_size: int | None = None) -> str:
        """``POST /_farfeed/uploads``: a new upload id for ``path`` (relative to this store).

        ``part_size`` (bytes): every part but the last will be exactly this long, so the
        gateway writes parts in place and commits without copying; None: parts of any size,
        joined at commit. `write_parts` with this id skips asking which parts arrived.
        """
        if part_size is not None and (
            isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < 1
        ):
            raise ConfigError(f"part_size must be None or an int >= 1 (bytes), got {part_size!r}")
        upload_id = await self._create(self._full(path)[0], part_size)
        while len(self._fresh) >= FRESH_IDS:
            del self._fresh[next(iter(self._fresh))]
        self._fresh[upload_id] = part_size
        return upload_id

    async def _create(self, full: str, part_size: int | None) -> str:
        request: dict[str, Any] = {"path": full}
        if part_size is not None:
            request["part_size"] = part_size
        body = await self._call("POST", "/_farfeed/uploads", json=request)
        upload_id = body.get("upload_id") if isinstance(body, dict) else None
        if not isinstance(upload_id, str) or not upload_id:
            raise StoreError(
                f"gateway answered an upload start without an upload_id: {body!r}", url=self.url
            )
        return upload_id

    async def upload_part(
        self, upload_id: str, part: int, data: Chunk, *, xxh64: str | None = None
    ) -> None:
        """``PUT`` ``data`` as part number ``part`` (0, 1, 2, ...) of upload ``upload_id``;
        the gateway checks its ``xxh64`` (computed here when None). Re-sending replaces it."""
        endpoint = f"/_farfeed/uploads/{_uid(upload_id)}/{int(part)}"
        self._fresh.pop(upload_id, None)
        digest = xxh64 or xxhash.xxh64(data).hexdigest()
        await self._call(
            "PUT",
            endpoint,
            data=data,
            headers={"X-Farfeed-Xxh64": digest},
        )

    async def upload_state(self, upload_id: str) -> dict[str, Any]:
        """``GET /_farfeed/uploads/ID`` for ``upload_id``: ``{"path", "part_size", "parts":
        {"0": {"size", "xxh64"}, ...}}``."""
        body = await self._call("GET", f"/_farfeed/uploads/{_uid(upload_id)}")
        if not isinstance(body, dict) or not isinstance(body.get("parts"), dict):
            raise StoreError(f"malformed upload state: {body!r}", url=self.url)
        return body

    async def commit_upload(
        self, upload_id: str, *, parts: int, xxh64: str | None = None
    ) -> dict[str, Any]:
        """Publish parts 0 .. ``parts`` - 1 of upload ``upload_id`` as the object, atomically; 409
        (BadRequestError) if any is missing. With ``xxh64`` the gateway also checks the whole
        object (one read of it)."""
        payload: dict[str, Any] = {"parts": parts}
        if xxh64 is not None:
            payload["xxh64"] = xxh64
        endpoint = f"/_farfeed/uploads/{_uid(upload_id)}/commit"
        self._fresh.pop(upload_id, None)
        body = await self._call("POST", endpoint, json=payload)
        return body if isinstance(body, dict) else {}

    async def abort_upload(self, upload_id: str) -> None:
        """``DELETE /_farfeed/uploads/ID``: drop the staged parts of ``upload_id``."""
        endpoint = f"/_farfeed/uploads/{_uid(upload_id)}"
        self._fresh.pop(upload_id, None)
        await self._call("DELETE", endpoint)

    async def _abort_quietly(self, upload_id: str) -> None:
        try:
            await self.abort_upload(upload_id)
        except StoreError:
            pass  # staged parts expire on the server after 24 h

    async def _held_parts(
        self, upload_id: str, full: str
    ) -> tuple[int | None, dict[int, tuple[int, str]]]:
        """(part_size, {part: (size, xxh64)}) of an upload the gateway already has."""
        state = await self.upload_state(upload_id)
        if state.get("path") not in (None, full):
            raise ConfigError(f"upload {upload_id!r} is for {state.get('path')!r}, not {full!r}")
        part_size = state.get("part_size")
        if part_size is not None and (not isinstance(part_size, int) or part_size < 1):
            raise StoreError(f"malformed part_size in upload state: {part_size!r}", url=self.url)
        held: dict[int, tuple[int, str]] = {}
        for key, part in state["parts"].items():
            try:
                held[int(key)] = (int(part["size"]), str(part["xxh64"]))
            except (KeyError, TypeError, ValueError):
                continue  # an entry we cannot read is simply sent again
        return part_size, held

    async def _call(self, method: str, endpoint: str, **kwargs: Any) -> Any:
        """One API request; returns its JSON body (None when empty)."""
        display = f"{self.url} ({endpoint})"
        session = await self._http.session()
        async with translated(display):
            async with session.request(method, f"{self.origin}{endpoint}", **kwargs) as resp:
                await check_status(resp, display)
                raw = await resp.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise StoreError(
                f"gateway sent a body that is not JSON: {raw[:100]!r}", url=display
            ) from exc


def _uid(upload_id: str) -> str:
    if (
        not isinstance(upload_id, str)
        or not upload_id
        or "/" in upload_id
        or upload_id in (".", "..")
    ):
        raise ConfigError(f"upload_id must be the id the gateway gave, got {upload_id!r}")
    return quote(upload_id, safe="")


def _send(
    store: GatewayUploads, uid: str, part: int, data: Chunk, digest: str
) -> Callable[[], Coroutine[Any, Any, None]]:
    return lambda: store.upload_part(uid, part, data, xxh64=digest)
