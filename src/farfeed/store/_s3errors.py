"""The one boundary where S3 error responses and network errors become farfeed errors.

An S3 error is an HTTP status plus an XML body naming a ``Code`` (``NoSuchKey``,
``SignatureDoesNotMatch``, ``SlowDown``...): the code decides first, then the status.
Network, TLS and timeout errors are translated by `farfeed.store._http.translated`.
"""

from __future__ import annotations

import asyncio
import re

import aiohttp

from farfeed.errors import (
    AccessDeniedError,
    BadRequestError,
    NotFoundError,
    StoreError,
    TransientError,
)
from farfeed.store._http import translated as s3_errors

__all__ = ["check_s3_status", "s3_error", "s3_errors", "xml_text"]

_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NotFound", "404"}
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
    "401",
    "403",
}
_TRANSIENT = {
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "Throttling",
    "ThrottlingException",
}


def xml_text(body: str, tag: str) -> str | None:
    """The text of the first ``<tag>`` in ``body`` (S3's replies are small, flat XML)."""
    match = re.search(rf"<{tag}>(.*?)</{tag}>", body, re.S)
    return match.group(1) if match else None


def s3_error(status: int, body: str, url: str) -> StoreError:
    """The farfeed error for an S3 error response (by its code, then its HTTP status)."""
    code = xml_text(body, "Code") or ""
    message = xml_text(body, "Message") or body.strip()[:200]
    text = f"S3 {code or status}: {message}" if message else f"S3 {code or status}"
    if code in _NOT_FOUND or status == 404:
        return NotFoundError(text, url=url)
    if code in _DENIED or status in (401, 403):
        return AccessDeniedError(text, url=url)
    if code in _TRANSIENT or status >= 500 or status in (408, 429):
        return TransientError(text, url=url)
    return BadRequestError(text, url=url)


async def check_s3_status(resp: aiohttp.ClientResponse, url: str) -> None:
    """Raise the farfeed error for a 4xx/5xx S3 response (HEAD replies have no body)."""
    if resp.status < 400:
        return
    try:
        body = await resp.content.read(64 * 1024)
    except (aiohttp.ClientError, asyncio.TimeoutError):
        body = b""
    raise s3_error(resp.status, body.decode("utf-8", "replace"), url)
