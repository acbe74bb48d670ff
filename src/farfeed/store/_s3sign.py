"""AWS Signature Version 4 for S3 requests, and where the keys come from.

Every S3 request carries an ``Authorization`` header: an HMAC-SHA256 over a canonical
form of the request (method, path, query, the signed headers), keyed by a key derived
from the secret for one day, region and service. The derived key is made once a day and
reused, so signing one request costs two SHA-256s and one HMAC (a few microseconds).
Bodies are not hashed (``UNSIGNED-PAYLOAD``, which every S3 server accepts): farfeed
checks its own bytes with xxh64, and hashing each checkpoint part would cost ~1 CPU-s/GB.

Keys, in order: the store's ``s3_access_key`` / ``s3_secret_key``, else the
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` environment
variables (read when the store is made), else, when ``botocore`` is installed beside
farfeed (it comes with ``boto3``), its credential chain (``AWS_PROFILE`` and
``~/.aws/credentials``, instance and container roles, SSO), asked on first use.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from farfeed.errors import AccessDeniedError

UNSIGNED = "UNSIGNED-PAYLOAD"
_ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Keys:
    """One set of S3 credentials; ``token`` is the session token of temporary keys."""

    access_key: str
    secret_key: str
    token: str | None = None


def uri_encode(text: str, *, keep_slash: bool) -> str:
    """SigV4's encoding: every byte but ``A-Z a-z 0-9 - _ . ~`` as ``%XX`` (``/`` kept in paths)."""
    return quote(text, safe="/~" if keep_slash else "~")


def canonical_query(query: Mapping[str, str]) -> str:
    """``a=1&b=x%2Fy``: names sorted, names and values encoded (the URL's query, as signed)."""
    return "&".join(
        f"{uri_encode(k, keep_slash=False)}={uri_encode(v, keep_slash=False)}"
        for k, v in sorted(query.items())
    )


class Signer:
    """Signs requests for one region with ``keys``; when None, with botocore's chain,
    asked at each request so refreshed temporary keys are picked up. ``url`` names the
    store in the error raised when no keys can be found."""

    def __init__(self, region: str, keys: Keys | None, url: str) -> None:
        self.region = region
        self._fixed = keys
        self._chain: Any = None
        self._url = url
        self._day_key: tuple[str, str, bytes] | None = None  # (day, secret, derived key)

    def keys(self) -> Keys:
        if self._fixed is not None:
            return self._fixed
        if self._chain is None:
            self._chain = _botocore_chain(self._url)
        frozen = self._chain.get_frozen_credentials()
        return Keys(frozen.access_key, frozen.secret_key, frozen.token)

    def _signing_key(self, day: str, secret: str) -> bytes:
        cached = self._day_key
        if cached is not None and cached[0] == day and cached[1] == secret:
            return cached[2]
        key = f"AWS4{secret}".encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        self._day_key = (day, secret, key)
        return key

    def headers(
        self, method: str, host: str, path: str, query: str, *, now: float | None = None
    ) -> dict[str, str]:
        """The headers that sign ``method`` on ``path`` (already encoded) with ``query``
        (`canonical_query`) at ``host`` (``name[:port]`` as sent in ``Host``)."""
        keys = self.keys()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        day = stamp[:8]
        signed = {"host": host, "x-amz-content-sha256": UNSIGNED, "x-amz-date": stamp}
        if keys.token:
            signed["x-amz-security-token"] = keys.token
        names = ";".join(signed)  # already in sorted order
        canonical = "\n".join(
            (method, path, query, *(f"{k}:{v}" for k, v in signed.items()), "", names, UNSIGNED)
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = f"{_ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(
            self._signing_key(day, keys.secret_key), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        signed["Authorization"] = (
            f"{_ALGORITHM} Credential={keys.access_key}/{scope}, "
            f"SignedHeaders={names}, Signature={signature}"
        )
        return signed


def _botocore_chain(url: str) -> Any:
    """botocore's credential chain, when botocore is installed and finds keys."""
    hint = (
        "pass s3_access_key and s3_secret_key, or set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY"
    )
    try:
        from botocore.session import get_session
    except ImportError:
        raise AccessDeniedError(f"no S3 credentials: {hint}", url=url) from None
    try:
        found = get_session().get_credentials()
    except Exception as exc:  # botocore's chain raises its own error types
        raise AccessDeniedError(f"no usable S3 credentials ({exc}): {hint}", url=url) from exc
    if found is None:
        raise AccessDeniedError(
            f"no S3 credentials (none in the environment or the AWS config): {hint}", url=url
        )
    return found
