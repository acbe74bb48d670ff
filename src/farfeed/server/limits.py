"""Limits that protect the gateway: per request (`ServerLimits`) and per connection
(`ConnectionLimits`), each one small typed settings object."""

from __future__ import annotations

import resource
from dataclasses import dataclass, fields

from farfeed.errors import ConfigError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def _check_positive(obj: object, names: list[str]) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{type(obj).__name__}.{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class ServerLimits:
    """How much one request may ask of the gateway, and when staged uploads are reclaimed.

    >>> ServerLimits(max_batch_ranges=1024, max_part_bytes=64 * MiB)

    ``max_batch_ranges``: items in one batch-get (more is 400);
    ``max_batch_bytes``: payload bytes one batch-get may ask for (more is 400);
    ``max_batch_body``: bytes of the batch-get JSON body (more is 413);
    ``max_part_bytes``: bytes of one chunked-upload part (more is 413);
    ``max_parts``: part numbers run from 0 to ``max_parts - 1``;
    ``batch_block_bytes``: where a batch response cannot be sendfile'd (TLS), it is read and
    written in blocks of about this size;
    ``reclaim_idle_seconds``: an unfinished chunked upload that no request has touched for
    this long is reclaimed as soon as its space is wanted: when a new save targets the same
    path, or when a write finds the disk full (see `farfeed.server.reclaim`);
    ``stale_upload_seconds``: an unfinished chunked upload untouched this long is removed
    even when nothing wants its space (it can no longer be resumed).
    """

    max_batch_ranges: int = 4096
    max_batch_bytes: int = 1 * GiB
    max_batch_body: int = 8 * MiB
    max_part_bytes: int = 256 * MiB
    max_parts: int = 100_000
    batch_block_bytes: int = 2 * MiB
    reclaim_idle_seconds: float = 60.0
    stale_upload_seconds: float = 24 * 3600.0

    def __post_init__(self) -> None:
        _check_positive(self, [f.name for f in fields(self)])


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a connection may wait on its client, and how many may be open at once.

    >>> ConnectionLimits(keepalive_timeout=75.0, header_timeout=30.0, body_timeout=60.0, max_connections=4096)

    The defaults suit a long link (200 ms round trips, TCP windows still opening): a
    client that is alive sends a whole header within a few round trips and never pauses
    a body for a minute, while keep-alive connections outlive the gaps between a
    trainer's checkpoint saves, so each save does not pay a new connection (1-2 RTTs,
    more with TLS).

    ``keepalive_timeout``: close a connection that carries no request for this long;
    ``header_timeout``: close a connection whose request header is still incomplete this
    long after its first byte arrived (also a connection that opened and sent nothing is
    closed after ``keepalive_timeout``);
    ``body_timeout``: close a connection whose client sent no byte of a request body it
    still owes for this long (time the gateway itself stops reading does not count);
    ``max_connections``: open connections per gateway process; None: three quarters of the
    open-file limit (raised to its hard limit at start), at most 65,536. Over the cap the
    oldest idle connection is closed to make room (first those that never completed a
    successful request); when every connection is busy the newcomer gets ``503`` with
    ``Retry-After``.
    """

    keepalive_timeout: float = 75.0
    header_timeout: float = 30.0
    body_timeout: float = 60.0
    max_connections: int | None = None

    def __post_init__(self) -> None:
        _check_positive(self, ["keepalive_timeout", "header_timeout", "body_timeout"])
        cap = self.max_connections
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ConfigError(f"ConnectionLimits.max_connections must be None or an int >= 1, got {cap!r}")

    def connection_cap(self) -> int:
        """``max_connections``, or the default derived from this process's open-file limit."""
        if self.max_connections is not None:
            return self.max_connections
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return 65_536
        return max(16, min(65_536, soft * 3 // 4))


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; (before, after).

    The soft limit (often 1,024) is what runs out first under many connections; the hard
    limit is what an unprivileged process may raise it to without asking anyone.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft, soft
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]
