"""Synthetic datasets for `farfeed bench io`: fixed-size samples of random bytes, as DLIO uses.

Each sample is one tar member ``KEY.bin`` of exactly ``sample_bytes`` (its span in the
shard is exactly that size), packed with farfeed.format's shard writer and index
builder, so the loader reads it like any other dataset. Random bytes cannot compress.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from farfeed.checksum import DEFAULT_CHECKSUM, digest_function
from farfeed.errors import ConfigError
from farfeed.format.builder import IndexBuilder, write_index
from farfeed.format.meta import DATASET_JSON, INDEX_FILE
from farfeed.format.sample_index import SampleIndex
from farfeed.format.tarwriter import ShardWriter

SHARD_BYTES = 64 * 2**20


def make_fixed_size_dataset(out: Path, *, samples: int, sample_bytes: int, seed: int = 0) -> Path:
    """Write a dataset of ``samples`` x ``sample_bytes`` at ``out``, or reuse the one an
    earlier run wrote there when it holds at least as many samples of that size, hashed
    with today's `DEFAULT_CHECKSUM` (what is measured is what a new pack reads)."""
    if samples < 1 or sample_bytes < 1:
        raise ConfigError(
            f"need samples >= 1 and sample_bytes >= 1, got {samples!r}, {sample_bytes!r}"
        )
    out = Path(out)
    meta_path = out / DATASET_JSON
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        bench = meta.get("bench_io", {})
        same = bench.get("sample_bytes") == sample_bytes and bench.get("seed") == seed
        same = same and meta.get("checksum", "xxh64") == DEFAULT_CHECKSUM
        if same and bench.get("samples", 0) >= samples:  # enough of the same samples
            return out
        if not bench:
            raise ConfigError(f"{str(out)!r} holds a dataset this bench did not make; pick --work")
        shutil.rmtree(out)  # a smaller synthetic set made by an earlier run: make it again
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    builder = IndexBuilder()
    writer = ShardWriter(out, builder, split="train", shard_size=SHARD_BYTES)
    try:
        for k in range(samples):
            data = rng.integers(0, 256, sample_bytes, dtype=np.uint8).tobytes()
            writer.add(f"{k:08d}", [("bin", data)], label=k % 1000)
    finally:
        writer.close()
    meta = builder.metadata("webdataset")
    meta["bench_io"] = {"samples": samples, "sample_bytes": sample_bytes, "seed": seed}
    write_index(out, meta, builder.arrays())
    return out


def rehashed_copy(src: Path, dst: Path, checksum: str, *, claim: str | None = None) -> Path:
    """``dst``: the dataset at ``src`` with its per-sample checksums made with ``checksum``
    (``"xxh64"``: as a dataset packed before XXH3 carries them), for A/B runs of the check's
    cost. Shards are hard-linked (``dst`` may be ``src``: rewritten in place); dataset.json
    names ``claim`` (default ``checksum``; another name makes the index disagree with the bytes)."""
    src, dst = Path(src), Path(dst)
    digest = digest_function(checksum)
    index = SampleIndex.load(src)
    dst.mkdir(parents=True, exist_ok=True)
    for name in index.shard_names:
        if not (dst / name).exists():
            (dst / name).hardlink_to(src / name)
    sums = np.zeros(len(index), dtype=np.uint64)
    fds = {name: os.open(src / name, os.O_RDONLY) for name in index.shard_names}
    try:
        for i in range(len(index)):
            shard, offset, size = index.span(i)
            sums[i] = digest(os.pread(fds[shard], size, offset))
    finally:
        for fd in fds.values():
            os.close(fd)
    with np.load(src / INDEX_FILE) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["checksum"] = sums
    meta = json.loads((src / DATASET_JSON).read_bytes())
    write_index(dst, {**meta, "checksum": claim or checksum}, arrays)
    return dst
