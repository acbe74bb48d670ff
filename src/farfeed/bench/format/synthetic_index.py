"""A synthetic index of ImageNet's size, for measuring index loading (no shards behind it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from farfeed.format.builder import write_index
from farfeed.format.meta import CREATED_BY, FORMAT_NAME, FORMAT_VERSION, INDEX_FILE

IMAGENET_TRAIN = 1_281_167


def write_synthetic_index(
    out: str | Path,
    *,
    samples: int = IMAGENET_TRAIN,
    shards: int = 1000,
    classes: int = 1000,
    seed: int = 0,
) -> Path:
    """Write a realistic dataset.json + index.npz (2 members per sample, ~115 KB JPEGs) to ``out``.

    The shard files themselves are not written: this is for timing `SampleIndex.load`.
    """
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jpg = rng.integers(60_000, 170_000, size=samples, dtype=np.uint64)
    # tar layout: jpg data, padding, 512-byte header, 1-3 byte cls data
    cls_at = jpg + (-jpg % np.uint64(512)) + np.uint64(512)
    label = rng.integers(0, classes, size=samples, dtype=np.int64)
    cls_size = np.where(label < 10, 1, np.where(label < 100, 2, 3)).astype(np.uint64)
    span = cls_at + cls_size
    blob = span + (-span % np.uint64(512)) + np.uint64(512)  # + the next sample's header
    shard = (np.arange(samples, dtype=np.int64) * shards // max(samples, 1)).astype(np.uint32)
    starts = np.cumsum(blob) - blob
    first = np.searchsorted(shard, np.arange(shards))
    offset = (starts - starts[np.minimum(first, samples - 1)][shard] + 512).astype(np.uint64)
    keys = np.array(
        [f"train/n{c:08d}/n{c:08d}_{i}" for i, c in enumerate(label.tolist())], dtype="S"
    )
    member_offset = np.empty(2 * samples, dtype=np.uint64)
    member_offset[0::2], member_offset[1::2] = 0, cls_at
    member_size = np.empty(2 * samples, dtype=np.uint64)
    member_size[0::2], member_size[1::2] = jpg, cls_size
    arrays = {
        "shard": shard,
        "offset": offset,
        "size": span,
        "checksum": rng.integers(0, 2**63, size=samples, dtype=np.uint64),
        "label": label,
        "split": np.zeros(samples, dtype=np.uint8),
        "key": keys,
        "member_start": np.arange(0, 2 * samples + 1, 2, dtype=np.uint64),
        "member_ext": np.tile(np.array([1, 0], dtype=np.uint16), samples),
        "member_offset": member_offset,
        "member_size": member_size,
    }
    shard_bytes = (
        np.bincount(shard, weights=blob.astype(np.float64), minlength=shards).astype(np.int64)
        + 1024
    )
    names = [f"train-{s:05d}.tar" for s in range(shards)]
    meta: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kind": "images",
        "samples": samples,
        "bytes": int(span.sum()),
        "shards": names,
        "shard_bytes": [int(b) for b in shard_bytes],
        "splits": {"train": {"samples": samples, "shards": names}},
        "classes": [f"n{c:08d}" for c in range(classes)],
        "extensions": ["cls", "jpg"],
        "checksum": "xxh64",
        "index": INDEX_FILE,
        "created_by": CREATED_BY,
    }
    write_index(out, meta, arrays)
    return out
