"""Limits that protect the gateway from oversized requests (one small typed settings object)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from farfeed.errors import ConfigError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class ServerLimits:
    """How much one request may ask of the gateway.

    >>> ServerLimits(max_batch_ranges=1024, max_part_bytes=64 * MiB)

    ``max_batch_ranges``: items in one batch-get (more is 400);
    ``max_batch_bytes``: payload bytes one batch-get may ask for (more is 400);
    ``max_batch_body``: bytes of the batch-get JSON body (more is 413);
    ``max_part_bytes``: bytes of one chunked-upload part (more is 413);
    ``max_parts``: part numbers run from 0 to ``max_parts - 1``;
    ``batch_block_bytes``: where a batch response cannot be sendfile'd (TLS), it is read and
    written in blocks of about this size;
    ``stale_upload_seconds``: staged uploads untouched this long are removed.
    """

    max_batch_ranges: int = 4096
    max_batch_bytes: int = 1 * GiB
    max_batch_body: int = 8 * MiB
    max_part_bytes: int = 256 * MiB
    max_parts: int = 100_000
    batch_block_bytes: int = 2 * MiB
    stale_upload_seconds: float = 24 * 3600.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"ServerLimits.{f.name} must be a positive number, got {value!r}")
