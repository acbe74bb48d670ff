"""The exception tree for farfeed, drawn once.

    FarfeedError
     ├── ConfigError (ValueError)        a bad argument or setting; the message quotes it
     ├── FormatError                     a dataset, shard or index that is not what it claims
     │    └── DatasetExistsError         OUT already holds a dataset
     ├── StoreError                      reading or writing bytes failed
     │    ├── NotFoundError              no such object / dataset
     │    ├── AccessDeniedError          missing or wrong token, or scope too small
     │    ├── CertificateError           an https server's certificate is not trusted
     │    ├── BadRequestError            the other side rejected the request (HTTP 4xx)
     │    ├── StorageFullError           the storage site's disk is full (HTTP 507): not retried
     │    └── TransientError             worth retrying: network errors, timeouts, HTTP 5xx
     ├── IntegrityError                  bytes arrived but their checksum is wrong
     └── CheckpointError                 a checkpoint is missing, truncated or corrupt

Library errors (aiohttp, S3 error replies, OSError) are translated into these at one boundary,
in ``farfeed.store``; nothing above the store layer sees a third-party exception.
"""

from __future__ import annotations


class FarfeedError(Exception):
    """Base class of every error farfeed raises on purpose."""


class ConfigError(FarfeedError, ValueError):
    """A bad argument or setting. The message quotes the offending value."""


class FormatError(FarfeedError):
    """A dataset, shard or index is malformed or not what it claims to be."""


class DatasetExistsError(FormatError):
    """The output directory already holds a dataset."""


class StoreError(FarfeedError):
    """Reading or writing bytes at a storage location failed: ``message`` says how, ``url``
    (kept as `.url`, without credentials) says where."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message if url is None else f"{message} ({url})")
        self.url = url


class NotFoundError(StoreError):
    """No such object, dataset or checkpoint."""


class AccessDeniedError(StoreError):
    """A token is missing, unknown, or lacks the needed scope."""


class CertificateError(StoreError):
    """An https server's certificate could not be verified (unknown CA, wrong host name).

    Retrying does not help; trusting the server's CA does. ``message`` says how, ``url``
    where; ``reason`` (kept as `.reason`) is the TLS library's own words (e.g.
    ``self-signed certificate``).
    """

    def __init__(self, message: str, *, url: str | None = None, reason: str = "") -> None:
        super().__init__(message, url=url)
        self.reason = reason


class BadRequestError(StoreError):
    """The server rejected the request as malformed (HTTP 4xx other than 401/403/404)."""


class StorageFullError(StoreError):
    """The storage site has no space left (HTTP 507, or a full disk): nothing was stored.

    Not transient: retrying the same write fails the same way until someone frees space
    there (the gateway already reclaimed what abandoned uploads held).
    """


class TransientError(StoreError):
    """A failure worth retrying: connection reset, timeout, HTTP 5xx."""


class IntegrityError(FarfeedError):
    """Bytes arrived, but their checksum does not match the index."""


class CheckpointError(FarfeedError):
    """A checkpoint is missing, truncated or corrupt."""
