"""Shared helpers for the loader tests: tiny real datasets, packed by farfeed.format."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from farfeed.format.pack_images import pack_images
from farfeed.format.sample_index import SampleIndex


def make_image_dataset(
    root: Path, *, train: int, val: int = 0, classes: int = 4, size: int = 24, seed: int = 0
) -> Path:
    """An ImageNet-layout folder of small, distinct JPEGs packed into ``root/images``."""
    rng = np.random.default_rng(seed)
    src = root / "src"
    for split, count in (("train", train), ("val", val)):
        for k in range(count):
            folder = src / split / f"class{k % classes}"
            folder.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
            (folder / f"{split}{k:05d}.jpg").write_bytes(buf.getvalue())
    out = root / "images"
    pack_images(src, out, shard_size="64KiB")
    return out


def keys(samples: Iterable[dict[str, object]]) -> list[str]:
    """The ``__key__`` of each raw sample, in order."""
    return [str(s["__key__"]) for s in samples]


def assert_exactly_once(got: Iterable[str], dataset: Path, split: str = "train") -> None:
    """Every sample key of ``split`` appears exactly once in ``got``."""
    index = SampleIndex.load(dataset)
    expected = Counter(index.key_of(int(i)) for i in index.ids(split))
    counts = Counter(got)
    assert counts == expected, (
        f"missing {sorted(set(expected) - set(counts))[:5]}, "
        f"extra {sorted(set(counts) - set(expected))[:5]}, "
        f"twice {[k for k, n in counts.items() if n > 1][:5]}"
    )
