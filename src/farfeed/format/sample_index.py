"""`SampleIndex`: random access to the samples of an "images" or "webdataset" dataset.

Loading is a handful of numpy arrays (no Python object per sample), so the index of
1.28 M samples loads in well under a second and can be shipped to every worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from farfeed.checksum import digest_function
from farfeed.errors import ConfigError, FormatError, IntegrityError
from farfeed.format.meta import DatasetMeta
from farfeed.format.npz_index import Buffer, NpzIndex

SAMPLE_ARRAYS = {
    "shard": np.uint32,
    "offset": np.uint64,
    "size": np.uint64,
    "checksum": np.uint64,
    "label": np.int64,
    "split": np.uint8,
    "key": np.bytes_,
    "member_start": np.uint64,
    "member_ext": np.uint16,
    "member_offset": np.uint64,
    "member_size": np.uint64,
}


class SampleIndex(NpzIndex):
    """Every sample's shard, span (offset, size), checksum, label, split, key and members."""

    shard: np.ndarray
    offset: np.ndarray
    size: np.ndarray
    checksum: np.ndarray
    label: np.ndarray
    split: np.ndarray
    key: np.ndarray
    member_start: np.ndarray
    member_ext: np.ndarray
    member_offset: np.ndarray
    member_size: np.ndarray

    ARRAYS = SAMPLE_ARRAYS

    def __init__(self, meta: DatasetMeta, arrays: dict[str, np.ndarray]) -> None:
        if meta.kind not in ("images", "webdataset"):
            raise FormatError(
                f"SampleIndex reads kinds 'images' and 'webdataset', not {meta.kind!r}"
            )
        self.meta = meta
        self.shard_names: list[str] = list(meta.shards)
        self.extensions: list[str] = list(meta.extensions)
        self.split_names: list[str] = meta.split_names
        for name in SAMPLE_ARRAYS:
            setattr(self, name, arrays[name])
        self._check()

    def _check(self) -> None:
        n, m = len(self.shard), len(self.member_ext)
        where = f"index of {self.meta.samples}-sample dataset"
        if n != self.meta.samples:
            raise FormatError(f"{where}: arrays hold {n} samples")
        for name in ("offset", "size", "checksum", "label", "split", "key"):
            if len(getattr(self, name)) != n:
                raise FormatError(
                    f"{where}: {name!r} has {len(getattr(self, name))} entries, expected {n}"
                )
        if (
            len(self.member_start) != n + 1
            or len(self.member_offset) != m
            or len(self.member_size) != m
        ):
            raise FormatError(f"{where}: member arrays are inconsistent")
        if n and (
            int(self.shard.max()) >= len(self.shard_names)
            or int(self.split.max()) >= len(self.split_names)
        ):
            raise FormatError(f"{where}: a shard or split number is out of range")
        if m and int(self.member_ext.max()) >= len(self.extensions):
            raise FormatError(f"{where}: a member extension number is out of range")
        if int(self.member_start[0]) != 0 or int(self.member_start[-1]) != m:
            raise FormatError(f"{where}: member_start must run from 0 to {m}")
        shard_bytes = np.asarray(self.meta.shard_bytes, dtype=np.uint64)
        if n and bool(np.any(self.offset + self.size > shard_bytes[self.shard])):
            bad = int(np.argmax(self.offset + self.size > shard_bytes[self.shard]))
            raise FormatError(f"{where}: sample {bad}'s span ends past the end of its shard")

    def __len__(self) -> int:
        return len(self.shard)

    def __repr__(self) -> str:
        return f"SampleIndex(kind={self.meta.kind!r}, samples={len(self)}, shards={len(self.shard_names)})"

    def ids(self, split: str | None = None) -> np.ndarray:
        """Sample ids (int64, ascending) of one split, or of all samples when ``split`` is None."""
        if split is None:
            return np.arange(len(self), dtype=np.int64)
        if split not in self.split_names:
            raise ConfigError(f"unknown split {split!r}; this dataset has {self.split_names}")
        return np.flatnonzero(self.split == self.split_names.index(split)).astype(np.int64)

    def _check_id(self, i: int) -> int:
        i = int(i)
        if not 0 <= i < len(self):
            raise ConfigError(f"sample id {i} out of range: the dataset has {len(self)} samples")
        return i

    def span(self, i: int) -> tuple[str, int, int]:
        """(shard name, offset, size) of sample ``i``: one range read gets all its members."""
        i = self._check_id(i)
        return self.shard_names[int(self.shard[i])], int(self.offset[i]), int(self.size[i])

    def spans(self, ids: Sequence[int] | np.ndarray) -> list[tuple[str, int, int]]:
        """(shard name, offset, size) of many samples, in the order given."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= len(self)):
            raise ConfigError(
                f"sample ids must be in [0, {len(self)}), got {ids.min()}..{ids.max()}"
            )
        names = self.shard_names
        return [
            (names[s], o, n)
            for s, o, n in zip(
                self.shard[ids].tolist(),
                self.offset[ids].tolist(),
                self.size[ids].tolist(),
                strict=True,
            )
        ]

    def key_of(self, i: int) -> str:
        """The WebDataset key of sample ``i``."""
        return bytes(self.key[self._check_id(i)]).decode("utf-8", "surrogateescape")

    def verify(self, i: int, data: Buffer) -> None:
        """Raise `IntegrityError` unless ``data`` is exactly sample ``i``'s span (length and
        checksum: the function dataset.json names, see `farfeed.checksum`)."""
        shard, offset, size = self.span(i)
        where = f"sample {self.key_of(i)!r} (id {i}, {shard} at offset {offset})"
        if len(data) != size:
            raise IntegrityError(f"{where}: got {len(data)} bytes, the index says {size}")
        digest = digest_function(self.meta.checksum)(data)
        if digest != int(self.checksum[i]):
            raise IntegrityError(
                f"{where}: {self.meta.checksum} {digest:016x} does not match the index "
                f"({int(self.checksum[i]):016x})"
            )

    def unpack(self, i: int, data: Buffer, *, verify: bool = True) -> dict[str, Any]:
        """Split a span into a WebDataset-style dict: ``{"__key__", "__index__", "jpg": bytes, ...}``."""
        if verify:
            self.verify(i, data)
        i = self._check_id(i)
        view = memoryview(data)
        sample: dict[str, Any] = {"__key__": self.key_of(i), "__index__": i}
        lo, hi = int(self.member_start[i]), int(self.member_start[i + 1])
        for ext, off, size in zip(
            self.member_ext[lo:hi].tolist(),
            self.member_offset[lo:hi].tolist(),
            self.member_size[lo:hi].tolist(),
            strict=False,
        ):
            if off + size > len(view):
                raise IntegrityError(
                    f"sample {self.key_of(i)!r}: member .{self.extensions[ext]} lies past the span"
                )
            sample[self.extensions[ext]] = bytes(view[off : off + size])
        return sample

    def class_names(self) -> list[str]:
        """Class names (label = position), empty when the dataset has none."""
        return list(self.meta.classes)
