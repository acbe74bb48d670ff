"""One S3 multipart upload with parallel parts: start, send parts, complete or abort."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol
from xml.sax.saxutils import escape

from farfeed.errors import StoreError
from farfeed.store._s3errors import s3_error, xml_text


class _Reply(Protocol):
    headers: Mapping[str, str]
    body: bytes


class S3Calls(Protocol):
    """What an upload needs of the store: `farfeed.store.s3.S3Store.call`."""

    async def call(
        self,
        method: str,
        key: str,
        display: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> _Reply: ...


class MultipartUpload:
    """Parts go up as tasks, at most ``concurrency`` at once; `complete` joins them in order."""

    def __init__(
        self, store: S3Calls, key: str, upload_id: str, display: str, concurrency: int
    ) -> None:
        self.store, self.key, self.upload_id = store, key, upload_id
        self.display, self.concurrency = display, concurrency
        self._tasks: list[asyncio.Future[str]] = []

    @classmethod
    async def start(
        cls, store: S3Calls, key: str, display: str, concurrency: int
    ) -> MultipartUpload:
        """``CreateMultipartUpload``: the upload's id, nothing visible yet."""
        reply = await store.call("POST", key, display, query={"uploads": ""})
        upload_id = xml_text(reply.body.decode("utf-8", "replace"), "UploadId")
        if not upload_id:
            raise StoreError("S3 started a multipart upload but sent no UploadId", url=display)
        return cls(store, key, upload_id, display, concurrency)

    async def send(self, data: bytes) -> None:
        """Queue the next part; waits while ``concurrency`` parts are in flight."""
        running = [t for t in self._tasks if not t.done()]
        if len(running) >= self.concurrency:
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for task in self._tasks:
            if task.done():
                task.result()  # raise the first failure early
        self._tasks.append(asyncio.ensure_future(self._part(len(self._tasks) + 1, data)))

    async def _part(self, number: int, data: bytes) -> str:
        """``UploadPart`` number ``number``; its ETag (the complete call lists them)."""
        reply = await self.store.call(
            "PUT",
            self.key,
            f"{self.display} (part {number})",
            query={"partNumber": str(number), "uploadId": self.upload_id},
            body=data,
        )
        return reply.headers.get("ETag", "")

    async def complete(self) -> int:
        """Wait for every part, then make the object visible in one step; returns the part count."""
        etags = list(await asyncio.gather(*self._tasks))
        listed = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{escape(tag)}</ETag></Part>"
            for n, tag in enumerate(etags, start=1)
        )
        body = f"<CompleteMultipartUpload>{listed}</CompleteMultipartUpload>".encode()
        reply = await self.store.call(
            "POST", self.key, self.display, query={"uploadId": self.upload_id}, body=body
        )
        text = reply.body.decode("utf-8", "replace")
        if "<Error>" in text:  # S3 may fail a complete after its 200 status line
            raise s3_error(500, text, self.display)
        return len(etags)

    async def abort(self) -> None:
        """Cancel parts in flight and abort, so nothing partial is left; errors here are dropped."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.store.call(
                "DELETE", self.key, self.display, query={"uploadId": self.upload_id}
            )
        except Exception:
            pass  # the lifecycle rule on the bucket (or the server) cleans up
