"""Write POSIX tar shards one sample at a time, recording each sample's span.

A sample's members are written back to back (header, data, padding), so the bytes from
the first member's data to the last member's data (the span) come back in one range read.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from farfeed.checksum import DEFAULT_CHECKSUM, digest_function
from farfeed.format.builder import IndexBuilder

BLOCK = 512
#: tar tools read whole records of 20 blocks; pad the end of each shard to one.
RECORD = 20 * BLOCK
#: Fixed mtime so packing the same input twice gives the same bytes (2020-01-01 UTC).
MTIME = 1577836800


def _pad(n: int) -> int:
    return -n % BLOCK


@dataclass(frozen=True)
class SampleBlob:
    """One sample's tar bytes; the span is ``blob[span_start:span_start + span_size]``."""

    blob: bytes
    span_start: int
    span_size: int
    members: list[tuple[str, int, int]]  # (ext, offset in span, size)
    checksum: int


def member_header(name: str, size: int) -> bytes:
    """The tar header block(s) of one regular file (pax extended header when the name needs it)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = MTIME
    info.mode = 0o644
    info.uname = info.gname = "farfeed"
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def build_sample(key: str, members: Sequence[tuple[str, bytes]]) -> SampleBlob:
    """Tar bytes for members ``KEY.EXT`` in the given order, with the span and its checksum
    (`DEFAULT_CHECKSUM`, what `IndexBuilder` records in dataset.json)."""
    parts: list[bytes] = []
    pos = 0
    span_start = -1
    recorded: list[tuple[str, int, int]] = []
    end = 0
    for ext, data in members:
        header = member_header(f"{key}.{ext}", len(data))
        parts += (header, data, b"\0" * _pad(len(data)))
        data_at = pos + len(header)
        if span_start < 0:
            span_start = data_at
        recorded.append((ext, data_at - span_start, len(data)))
        end = data_at + len(data)
        pos = end + _pad(len(data))
    blob = b"".join(parts)
    span_size = end - span_start
    checksum = digest_function(DEFAULT_CHECKSUM)(memoryview(blob)[span_start:end])
    return SampleBlob(blob, span_start, span_size, recorded, checksum)


class ShardWriter:
    """Writes ``PREFIX-00000.tar``, ``PREFIX-00001.tar``, ... in ``directory``, rolling over at
    ``shard_size`` bytes, and records every sample in an `IndexBuilder`.
    """

    def __init__(
        self, directory: Path, builder: IndexBuilder, *, split: str, shard_size: int
    ) -> None:
        self.directory = Path(directory)
        self.builder = builder
        self.split = split
        self.shard_size = shard_size
        self.bytes_written = 0
        self._count = 0
        self._file: BinaryIO | None = None
        self._shard = -1
        self._pos = 0
        self._samples_in_shard = 0

    def add(self, key: str, members: Sequence[tuple[str, bytes]], *, label: int) -> None:
        """Append one sample (members in order) to the current shard."""
        sample = build_sample(key, members)
        full = len(sample.blob) + 2 * BLOCK > self.shard_size - self._pos
        if self._file is None or (self._samples_in_shard and full):
            self._open_next()
        assert self._file is not None
        self._file.write(sample.blob)
        self.builder.add_sample(
            shard=self._shard,
            offset=self._pos + sample.span_start,
            size=sample.span_size,
            checksum=sample.checksum,
            label=label,
            key=key,
            members=sample.members,
        )
        self._pos += len(sample.blob)
        self._samples_in_shard += 1

    def _open_next(self) -> None:
        self._close_current()
        name = f"{self.split}-{self._count:05d}.tar"
        self._count += 1
        self._shard = self.builder.add_shard(name, self.split)
        self._file = open(self.directory / name, "wb")
        self._pos = 0
        self._samples_in_shard = 0

    def _close_current(self) -> None:
        f = self._file
        if f is None:
            return
        end = 2 * BLOCK
        end += -(self._pos + end) % RECORD
        f.write(b"\0" * end)
        f.flush()
        os.fsync(f.fileno())
        f.close()
        self._pos += end
        self.builder.set_shard_bytes(self._shard, self._pos)
        self.bytes_written += self._pos
        self._file = None

    def close(self) -> None:
        """Finish the last shard (end-of-archive blocks, fsync)."""
        self._close_current()
