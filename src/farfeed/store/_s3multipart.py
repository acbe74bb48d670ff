"""One S3 multipart upload with parallel parts: start, send parts, complete or abort."""

from __future__ import annotations

import asyncio
from typing import Any

from farfeed.store._s3errors import s3_errors


class MultipartUpload:
    """Parts go up as tasks, at most ``concurrency`` at once; `complete` joins them in order."""

    def __init__(
        self, client: Any, bucket: str, key: str, upload_id: str, display: str, concurrency: int
    ) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.upload_id, self.display, self.concurrency = upload_id, display, concurrency
        self._tasks: list[asyncio.Future[dict[str, Any]]] = []

    @classmethod
    async def start(
        cls, client: Any, bucket: str, key: str, display: str, concurrency: int
    ) -> MultipartUpload:
        async with s3_errors(display):
            resp = await client.create_multipart_upload(Bucket=bucket, Key=key)
        return cls(client, bucket, key, resp["UploadId"], display, concurrency)

    async def send(self, data: bytes) -> None:
        """Queue the next part; waits while ``concurrency`` parts are in flight."""
        running = [t for t in self._tasks if not t.done()]
        if len(running) >= self.concurrency:
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for task in self._tasks:
            if task.done():
                task.result()  # raise the first failure early
        self._tasks.append(asyncio.ensure_future(self._part(len(self._tasks) + 1, data)))

    async def _part(self, number: int, data: bytes) -> dict[str, Any]:
        async with s3_errors(f"{self.display} (part {number})"):
            resp = await self.client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=data,
            )
        return {"ETag": resp["ETag"], "PartNumber": number}

    async def complete(self) -> int:
        """Wait for every part, then make the object visible in one step; returns the part count."""
        parts = list(await asyncio.gather(*self._tasks))
        async with s3_errors(self.display):
            await self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            )
        return len(parts)

    async def abort(self) -> None:
        """Cancel parts in flight and abort, so nothing partial is left; errors here are dropped."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            async with s3_errors(self.display):
                await self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
                )
        except Exception:
            pass  # the lifecycle rule on the bucket (or the server) cleans up
