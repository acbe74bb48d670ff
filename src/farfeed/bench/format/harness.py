"""Measurements behind `farfeed bench format`: pack throughput and index load time.

    farfeed bench format --samples 1281167 --pack-images 2000 --json bench-out/format.json

Index load is timed on a synthetic index of ImageNet's size (`synthetic_index`).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from farfeed.bench.format.synthetic_index import IMAGENET_TRAIN, write_synthetic_index
from farfeed.format.meta import DATASET_JSON
from farfeed.format.pack_images import pack_images
from farfeed.format.sample_images import make_sample_images
from farfeed.format.sample_index import SampleIndex


def measure_pack(work: Path, *, images: int, repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """Make ``images`` sample JPEGs once, pack them ``repeats`` times; MB/s of shards written."""
    src = make_sample_images(work / "images", count=images, seed=seed, val_fraction=0.0)
    runs = []
    for r in range(repeats):
        out = work / f"packed-{r}"
        report = pack_images(src, out)
        runs.append({"seconds": report.seconds, "bytes": report.bytes, "mb_per_s": report.mb_per_s})
        shutil.rmtree(out)
    return {
        "images": images,
        "bytes": runs[0]["bytes"],
        "runs": runs,
        "median_mb_per_s": statistics.median(r["mb_per_s"] for r in runs),
        "median_images_per_s": statistics.median(images / r["seconds"] for r in runs),
    }


def measure_index_load(
    work: Path, *, samples: int = IMAGENET_TRAIN, shards: int = 1000, repeats: int = 5
) -> dict[str, Any]:
    """Write a synthetic index of ``samples`` (2 members each), time `SampleIndex.load` and `from_bytes`."""
    out = write_synthetic_index(work / "synthetic", samples=samples, shards=shards)
    meta = out / DATASET_JSON
    npz = out / "index.npz"
    load, from_bytes = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        index = SampleIndex.load(out)
        load.append(time.perf_counter() - started)
        assert len(index) == samples
        meta_bytes, npz_bytes = meta.read_bytes(), npz.read_bytes()
        started = time.perf_counter()
        SampleIndex.from_bytes(meta_bytes, npz_bytes)
        from_bytes.append(time.perf_counter() - started)
        del index, npz_bytes
    return {
        "samples": samples,
        "shards": shards,
        "index_bytes": npz.stat().st_size,
        "load_seconds": load,
        "median_load_seconds": statistics.median(load),
        "from_bytes_seconds": from_bytes,
        "median_from_bytes_seconds": statistics.median(from_bytes),
    }


def run_format_bench(
    *, samples: int, pack_images_count: int, work_dir: str | Path | None = None
) -> dict[str, Any]:
    """Both measurements in a scratch folder (removed afterwards unless ``work_dir`` is given)."""
    scratch = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="farfeed-bench-format-"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        return {
            "pack": measure_pack(scratch, images=pack_images_count),
            "index_load": measure_index_load(scratch, samples=samples),
        }
    finally:
        if work_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)


def format_bench_summary(result: dict[str, Any]) -> str:
    """Both figures in two lines of text."""
    pack, load = result["pack"], result["index_load"]
    return (
        f"pack images: {pack['images']:,} JPEGs, {pack['bytes'] / 1e6:,.1f} MB, median "
        f"{pack['median_mb_per_s']:,.1f} MB/s ({pack['median_images_per_s']:,.0f} images/s) of 3 packs\n"
        f"index load: {load['samples']:,} samples, {load['index_bytes'] / 1e6:,.1f} MB index.npz, "
        f"SampleIndex.load median {load['median_load_seconds'] * 1e3:,.0f} ms, "
        f"from_bytes median {load['median_from_bytes_seconds'] * 1e3:,.0f} ms (5 runs)"
    )
