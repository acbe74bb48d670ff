"""`StoreOptions`: the settings every backend takes, checked once when a store is opened."""

from __future__ import annotations

import ssl as _ssl
from dataclasses import dataclass

from farfeed.errors import CertificateError, ConfigError

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreOptions:
    """How to reach a store. Backends ignore the options that do not apply to them.

    >>> StoreOptions(token="3f9c…", connections=64, timeout=60.0, part_size=16 * MiB)

    - ``token``: bearer token for the farfeed gateway (and any HTTP server that wants one).
    - ``ssl``: for https: an `ssl.SSLContext`, a CA bundle file, False to skip certificate
      checks (self-signed test servers), None for the system defaults. The public entry
      points take ``token=`` and ``ca_file=`` for these (`farfeed.store.access`).
    - ``connections``: most keep-alive connections (and concurrent requests) per store.
    - ``timeout``: seconds to connect, and most seconds between two reads of one response.
    - ``part_size``: bytes per part of a chunked / multipart upload.
    - ``multipart_threshold``: objects larger than this (bytes) are uploaded in parts.
    - ``s3_endpoint_url``, ``s3_access_key``, ``s3_secret_key``, ``s3_region``: where an
      ``s3://`` store is and the keys for it; None means the ``AWS_*`` environment
      variable (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
      ``AWS_REGION``).
    """

    token: str | None = None
    ssl: _ssl.SSLContext | str | bool | None = None
    connections: int = 64
    timeout: float = 60.0
    part_size: int = 16 * MiB
    multipart_threshold: int = 64 * MiB
    s3_endpoint_url: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.connections, int) or self.connections < 1:
            raise ConfigError(f"connections must be an int >= 1, got {self.connections!r}")
        if not isinstance(self.timeout, (int, float)) or not self.timeout > 0:
            raise ConfigError(f"timeout must be a number of seconds > 0, got {self.timeout!r}")
        if not isinstance(self.part_size, int) or self.part_size < 1:
            raise ConfigError(f"part_size must be an int >= 1 (bytes), got {self.part_size!r}")
        if not isinstance(self.multipart_threshold, int) or self.multipart_threshold < 0:
            raise ConfigError(
                f"multipart_threshold must be an int >= 0 (bytes), got {self.multipart_threshold!r}"
            )
        if self.token is not None and (not isinstance(self.token, str) or not self.token.strip()):
            raise ConfigError(f"token must be a non-empty string, got {self.token!r}")
        if self.ssl is not None and not isinstance(self.ssl, (_ssl.SSLContext, str, bool)):
            raise ConfigError(
                f"ssl must be an SSLContext, a CA file path, True/False or None, got {self.ssl!r}"
            )

    def ssl_context(self) -> _ssl.SSLContext | bool:
        """What aiohttp's ``ssl=`` wants: a context, False (no checks) or True (defaults)."""
        if self.ssl is None or self.ssl is True:
            return True
        if self.ssl is False:
            return False
        if isinstance(self.ssl, str):
            try:
                return _ssl.create_default_context(cafile=self.ssl)
            except (OSError, _ssl.SSLError) as exc:
                raise ConfigError(f"cannot load CA file {self.ssl!r}: {exc}") from exc
        return self.ssl


def certificate_error(reason: object, url: str) -> CertificateError:
    """The error for an https certificate that failed its check, saying how to trust it."""
    return CertificateError(
        f"TLS certificate check failed: {reason}; trust the server's CA with ca_file=PATH "
        "(or the SSL_CERT_FILE environment variable), or skip the check on a self-signed "
        "test server with store_options={'ssl': False}",
        url=url,
        reason=str(reason),
    )
