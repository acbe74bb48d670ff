"""The one boundary where botocore / aiobotocore exceptions become farfeed errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from botocore import exceptions as bx

from farfeed.errors import (
    AccessDeniedError,
    BadRequestError,
    NotFoundError,
    StoreError,
    TransientError,
)

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


def client_error(exc: bx.ClientError, url: str) -> StoreError:
    """The farfeed error for an S3 error response (by its code, then its HTTP status)."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    text = f"S3 {code or status}: {error.get('Message') or exc}"
    if code in _NOT_FOUND or status == 404:
        return NotFoundError(text, url=url)
    if code in _DENIED or status in (401, 403):
        return AccessDeniedError(text, url=url)
    if code in _TRANSIENT or status >= 500 or status == 429:
        return TransientError(text, url=url)
    return BadRequestError(text, url=url)


@asynccontextmanager
async def s3_errors(url: str) -> AsyncIterator[None]:
    """Translate every botocore, aiohttp and socket error raised inside the block."""
    try:
        yield
    except StoreError:
        raise
    except bx.ClientError as exc:
        raise client_error(exc, url) from exc
    except (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError) as exc:
        raise AccessDeniedError(
            f"no usable S3 credentials ({exc}): pass s3_access_key and s3_secret_key, or set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            url=url,
        ) from exc
    except (bx.ParamValidationError, bx.ValidationError) as exc:
        raise BadRequestError(f"S3 request rejected before sending: {exc}", url=url) from exc
    except (
        bx.ConnectionError,
        bx.HTTPClientError,
        bx.IncompleteReadError,
        bx.ChecksumError,
        aiohttp.ClientError,
        asyncio.TimeoutError,
        TimeoutError,
        OSError,
    ) as exc:
        raise TransientError(f"network error: {type(exc).__name__}: {exc}", url=url) from exc
    except bx.BotoCoreError as exc:
        raise StoreError(f"S3 client error: {exc}", url=url) from exc
