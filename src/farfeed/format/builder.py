"""Collect per-sample records while packing or indexing, then write index.npz + dataset.json."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from farfeed.checksum import DEFAULT_CHECKSUM
from farfeed.format.meta import (
    CREATED_BY,
    DATASET_JSON,
    FORMAT_NAME,
    FORMAT_VERSION,
    INDEX_FILE,
    write_json_atomic,
)

#: Split names in the order they are numbered when present.
SPLIT_ORDER = ("train", "val", "test")


class IndexBuilder:
    """Accumulates shards and samples in order; `arrays` turns them into the index.npz arrays."""

    def __init__(self) -> None:
        self.shards: list[str] = []
        self.shard_bytes: list[int] = []
        self.shard_split: list[str] = []
        self._split_codes: dict[str, int] = {}
        self._ext_codes: dict[str, int] = {}
        self._cols: dict[str, list[int]] = {
            k: [] for k in ("shard", "offset", "size", "checksum", "label", "split")
        }
        self._keys: list[bytes] = []
        self._member_start: list[int] = [0]
        self._member_ext: list[int] = []
        self._member_offset: list[int] = []
        self._member_size: list[int] = []

    def __len__(self) -> int:
        return len(self._keys)

    def add_shard(self, name: str, split: str) -> int:
        """Register a shard (its size is set later with `set_shard_bytes`); returns its number."""
        self.shards.append(name)
        self.shard_bytes.append(0)
        self.shard_split.append(split)
        self._split_codes.setdefault(split, len(self._split_codes))
        return len(self.shards) - 1

    def set_shard_bytes(self, shard: int, size: int) -> None:
        """Record a finished shard's file size."""
        self.shard_bytes[shard] = size

    def add_sample(
        self,
        *,
        shard: int,
        offset: int,
        size: int,
        checksum: int,
        label: int,
        key: str,
        members: Sequence[tuple[str, int, int]],
    ) -> None:
        """One sample: its span in ``shard`` and its members as (ext, offset in span, size)."""
        cols = self._cols
        cols["shard"].append(shard)
        cols["offset"].append(offset)
        cols["size"].append(size)
        cols["checksum"].append(checksum)
        cols["label"].append(label)
        cols["split"].append(self._split_codes[self.shard_split[shard]])
        self._keys.append(key.encode("utf-8", "surrogateescape"))
        for ext, m_offset, m_size in members:
            self._member_ext.append(self._ext_codes.setdefault(ext, len(self._ext_codes)))
            self._member_offset.append(m_offset)
            self._member_size.append(m_size)
        self._member_start.append(len(self._member_ext))

    def extensions(self) -> list[str]:
        """Member extensions, sorted: dataset.json "extensions"."""
        return sorted(self._ext_codes)

    def split_names(self) -> list[str]:
        """Split names in canonical order (train, val, test, then others by name)."""
        rank = {name: i for i, name in enumerate(SPLIT_ORDER)}
        return sorted(self._split_codes, key=lambda s: (rank.get(s, len(rank)), s))

    def arrays(self) -> dict[str, np.ndarray]:
        """The index.npz arrays, with split and extension codes renumbered to sorted order."""
        names = self.split_names()
        split_map = np.zeros(max(len(names), 1), dtype=np.uint8)
        for old, name in enumerate(self._split_codes):
            split_map[old] = names.index(name)
        exts = self.extensions()
        ext_map = np.zeros(max(len(exts), 1), dtype=np.uint16)
        for ext, old in self._ext_codes.items():
            ext_map[old] = exts.index(ext)
        cols = self._cols
        return {
            "shard": np.asarray(cols["shard"], dtype=np.uint32),
            "offset": np.asarray(cols["offset"], dtype=np.uint64),
            "size": np.asarray(cols["size"], dtype=np.uint64),
            "checksum": np.asarray(cols["checksum"], dtype=np.uint64),
            "label": np.asarray(cols["label"], dtype=np.int64),
            "split": split_map[np.asarray(cols["split"], dtype=np.intp)],
            "key": np.asarray(self._keys, dtype="S") if self._keys else np.zeros(0, "S1"),
            "member_start": np.asarray(self._member_start, dtype=np.uint64),
            "member_ext": ext_map[np.asarray(self._member_ext, dtype=np.intp)],
            "member_offset": np.asarray(self._member_offset, dtype=np.uint64),
            "member_size": np.asarray(self._member_size, dtype=np.uint64),
        }

    def metadata(self, kind: str, *, classes: Sequence[str] | None = None) -> dict[str, Any]:
        """dataset.json for what was added (kinds "images" and "webdataset")."""
        counts = dict.fromkeys(self.split_names(), 0)
        code_to_name = {code: name for name, code in self._split_codes.items()}
        for code in self._cols["split"]:
            counts[code_to_name[code]] += 1
        meta: dict[str, Any] = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "samples": len(self),
            "bytes": int(sum(self._cols["size"])),
            "shards": list(self.shards),
            "shard_bytes": list(self.shard_bytes),
            "splits": {
                name: {
                    "samples": counts[name],
                    "shards": [
                        s for s, sp in zip(self.shards, self.shard_split, strict=True) if sp == name
                    ],
                }
                for name in self.split_names()
            },
        }
        if classes is not None:
            meta["classes"] = list(classes)
        meta.update(
            extensions=self.extensions(), checksum=DEFAULT_CHECKSUM, index=INDEX_FILE, created_by=CREATED_BY
        )
        return meta


def write_index(directory: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write index.npz (uncompressed) then dataset.json, each atomically: dataset.json last."""
    directory = Path(directory)
    tmp = directory / f".{INDEX_FILE}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / meta.get("index", INDEX_FILE))
    write_json_atomic(directory / DATASET_JSON, meta)
