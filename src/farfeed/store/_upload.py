"""Chunked, resumable uploads to the gateway (``/_farfeed/uploads``): parts go up in
parallel over several connections, each with its xxh64; the commit checks the whole."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import xxhash

from farfeed.errors import ConfigError, StoreError
from farfeed.store._http import HttpClient, check_status, translated
from farfeed.store._paths import clean_relpath
from farfeed.store.base import Chunk, Parts, Store, UploadResult, aiter_parts
from farfeed.store.options import StoreOptions


class GatewayUploads(Store):
    """The upload half of `GatewayStore`: `write_parts` and the five upload calls under it."""

    origin: str
    prefix: str
    options: StoreOptions
    _http: HttpClient

    def _full(self, path: str) -> tuple[str, str]:
        """(root-relative path on the gateway, URL for messages) of a store-relative path."""
        rel = clean_relpath(path)
        return (f"{self.prefix}/{rel}" if self.prefix else rel), f"{self.url}/{rel}"

    async def write_parts(
        self, path: str, parts: Parts, *, concurrency: int = 4, upload_id: str | None = None
    ) -> UploadResult:
        """Upload an object part by part, ``concurrency`` parts at once, then commit atomically.

        Without ``upload_id`` a new upload is started and aborted if anything fails. To make
        an upload resumable, start it yourself (`start_upload`), pass its id, and on failure
        call again with the same id and the same parts: parts the gateway already holds
        (same size and xxh64) are not sent again. Parts must not change once yielded.
        """
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"concurrency must be an int >= 1, got {concurrency!r}")
        full, display = self._full(path)
        owned = upload_id is None
        uid = await self.start_upload(path) if upload_id is None else upload_id
        held = {} if owned else await self._held_parts(uid, full)
        digest = xxhash.xxh64()
        size = count = skipped = 0
        pending: set[asyncio.Future[None]] = set()
        try:
            async for part in aiter_parts(parts):
                part_hash = xxhash.xxh64(part).hexdigest()
                digest.update(part)
                size += len(part)
                if held.get(count) == (len(part), part_hash):
                    skipped += 1
                else:
                    if len(pending) >= concurrency:
                        done, pending = await asyncio.wait(
                            pending, return_when=asyncio.FIRST_COMPLETED
                        )
                        for task in done:
                            task.result()
                    pending.add(
                        asyncio.ensure_future(self.upload_part(uid, count, part, xxh64=part_hash))
                    )
                count += 1
            for task in asyncio.as_completed(pending):
                await task
            pending = set()
            if count == 0:  # nothing to commit: an empty object is a plain PUT
                await self.abort_upload(uid)
                await self.write(path, b"")
                return UploadResult(path, 0, digest.hexdigest(), 0)
            committed = await self.commit_upload(uid, parts=count, xxh64=digest.hexdigest())
        except BaseException:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if owned:
                await asyncio.shield(self._abort_quietly(uid))
            raise
        if int(committed.get("size", size)) != size:
            raise StoreError(
                f"gateway committed {committed.get('size')} bytes, sent {size}", url=display
            )
        return UploadResult(path, size, digest.hexdigest(), count, skipped)

    async def start_upload(self, path: str) -> str:
        """``POST /_farfeed/uploads``: a new upload id for ``path`` (relative to this store)."""
        full, _ = self._full(path)
        body = await self._call("POST", "/_farfeed/uploads", json={"path": full})
        upload_id = body.get("upload_id") if isinstance(body, dict) else None
        if not isinstance(upload_id, str) or not upload_id:
            raise StoreError(
                f"gateway answered an upload start without an upload_id: {body!r}", url=self.url
            )
        return upload_id

    async def upload_part(
        self, upload_id: str, part: int, data: Chunk, *, xxh64: str | None = None
    ) -> None:
        """``PUT`` one part (0, 1, 2, ...); the gateway checks its xxh64. Re-sending replaces it."""
        digest = xxh64 or xxhash.xxh64(data).hexdigest()
        await self._call(
            "PUT",
            f"/_farfeed/uploads/{_uid(upload_id)}/{int(part)}",
            data=data,
            headers={"X-Farfeed-Xxh64": digest},
        )

    async def upload_state(self, upload_id: str) -> dict[str, Any]:
        """``GET /_farfeed/uploads/ID``: ``{"path": ..., "parts": {"0": {"size", "xxh64"}, ...}}``."""
        body = await self._call("GET", f"/_farfeed/uploads/{_uid(upload_id)}")
        if not isinstance(body, dict) or not isinstance(body.get("parts"), dict):
            raise StoreError(f"malformed upload state: {body!r}", url=self.url)
        return body

    async def commit_upload(
        self, upload_id: str, *, parts: int, xxh64: str | None = None
    ) -> dict[str, Any]:
        """Join parts ``0..parts-1`` into the object atomically; 409 (BadRequestError) if any is missing."""
        payload: dict[str, Any] = {"parts": parts}
        if xxh64 is not None:
            payload["xxh64"] = xxh64
        body = await self._call("POST", f"/_farfeed/uploads/{_uid(upload_id)}/commit", json=payload)
        return body if isinstance(body, dict) else {}

    async def abort_upload(self, upload_id: str) -> None:
        """``DELETE /_farfeed/uploads/ID``: drop the staged parts."""
        await self._call("DELETE", f"/_farfeed/uploads/{_uid(upload_id)}")

    async def _abort_quietly(self, upload_id: str) -> None:
        try:
            await self.abort_upload(upload_id)
        except StoreError:
            pass  # staged parts expire on the server after 24 h

    async def _held_parts(self, upload_id: str, full: str) -> dict[int, tuple[int, str]]:
        state = await self.upload_state(upload_id)
        if state.get("path") not in (None, full):
            raise ConfigError(f"upload {upload_id!r} is for {state.get('path')!r}, not {full!r}")
        held: dict[int, tuple[int, str]] = {}
        for key, part in state["parts"].items():
            try:
                held[int(key)] = (int(part["size"]), str(part["xxh64"]))
            except (KeyError, TypeError, ValueError):
                continue  # an entry we cannot read is simply sent again
        return held

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
