"""Test datasets, one family: image folders, packed image datasets, byte datasets, a bench root."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from farfeed.bench.io.data import rehashed_copy
from farfeed.format.builder import IndexBuilder, write_index
from farfeed.format.pack_images import pack_images
from farfeed.format.pack_text import pack_text
from farfeed.format.sample_images import make_sample_images
from farfeed.format.sample_text import make_sample_text
from farfeed.format.tarwriter import ShardWriter
from farfeed.wan import Link

#: ``"noise"``: tiny random-pixel JPEGs (fast, each distinct; classes ``class0``, ...).
#: ``"sample"``: farfeed's sample images (320 px, ~110 KB, learnable; ``class_000``, ...).
Look = Literal["noise", "sample"]


def image_folder(
    out: Path,
    *,
    train: int,
    val: int = 0,
    classes: int = 4,
    seed: int = 0,
    look: Look = "noise",
    size: int = 24,
) -> Path:
    """An ImageNet-layout folder ``out/{train,val}/<class>/*.jpg``; ``size`` is the noise side."""
    if look == "sample":
        return make_sample_images(
            out, count=train, seed=seed, classes=classes, val_fraction=val / train
        )
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        for k in range(count):
            folder = out / split / f"class{k % classes}"
            folder.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
            (folder / f"{split}{k:05d}.jpg").write_bytes(buf.getvalue())
    return out


def packed_images(
    out: Path,
    *,
    train: int,
    val: int = 0,
    classes: int = 4,
    seed: int = 0,
    look: Look = "noise",
    shard_size: int | str = "64KiB",
    src: Path | None = None,
) -> Path:
    """An `image_folder` (at ``src``, default ``OUT-src`` beside ``out``) packed into dataset ``out``.

    >>> packed_images(tmp_path / "images", train=120, val=24)       # 144 tiny JPEGs, 64 KiB shards
    """
    src = out.with_name(f"{out.name}-src") if src is None else src
    image_folder(src, train=train, val=val, classes=classes, seed=seed, look=look)
    pack_images(src, out, shard_size=shard_size)
    return out


def fixed_size_dataset(
    out: Path, *, samples: int, sample_bytes: int, seed: int = 0, shard_size: int = 64 * 2**20
) -> Path:
    """A dataset of ``samples`` train samples ``KEY.bin`` (keys ``00000000``, ...) of exactly
    ``sample_bytes`` random bytes each, labels ``k % 1000``: sizes known to the byte."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    builder = IndexBuilder()
    writer = ShardWriter(out, builder, split="train", shard_size=shard_size)
    try:
        for k in range(samples):
            data = rng.integers(0, 256, sample_bytes, dtype=np.uint8).tobytes()
            writer.add(f"{k:08d}", [("bin", data)], label=k % 1000)
    finally:
        writer.close()
    write_index(out, builder.metadata("webdataset"), builder.arrays())
    return out


def fake_dataset(
    root: Path,
    name: str = "ds",
    *,
    sizes: tuple[int, ...] = (300_000, 200_000, 150_000),
    seed: int = 0,
) -> dict[str, bytes]:
    """``root/name``: a ``dataset.json`` and random "shards" (no index), for the gateway's
    byte paths; returns ROOT-relative path -> bytes of every shard."""
    rng = random.Random(seed)
    folder = root / name
    folder.mkdir(parents=True)
    meta = {"kind": "images", "samples": 42, "bytes": sum(sizes)}
    (folder / "dataset.json").write_text(json.dumps(meta))
    files = {}
    for i, size in enumerate(sizes):
        data = rng.randbytes(size)
        (folder / f"shard-{i:05d}.tar").write_bytes(data)
        files[f"{name}/shard-{i:05d}.tar"] = data
    return files


def storage_root(root: Path, *, images: int = 64, text_bytes: int = 256 * 1024) -> Path:
    """The training bench's storage root: ``images`` (sample JPEGs + a quarter more val,
    4 classes, 1 MiB shards), ``text`` (byte tokens) and an empty ``checkpoints``."""
    packed_images(
        root / "images", src=root.parent / "src-images", train=images, val=round(images / 4),
        classes=4, look="sample", shard_size="1MiB",
    )  # fmt: skip
    make_sample_text(root.parent / "src-text", max_bytes=text_bytes)
    pack_text(root.parent / "src-text", root / "text", tokenizer="byte", val_fraction=0.1)
    (root / "checkpoints").mkdir()
    return root


def remote_links() -> dict[str, Link]:
    """The near (0 ms) and remote (tokyo-fukuoka, 15 ms) links to a `storage_root`."""
    return {"near": Link(rtt=0.0), "remote": Link.from_preset("tokyo-fukuoka")}


def rehash_dataset(ds: Path, checksum: str, *, claim: str | None = None) -> None:
    """Rewrite a dataset's per-sample checksums in place with ``checksum`` (as one packed by
    an older farfeed carries: ``"xxh64"``); dataset.json names ``claim`` (see `rehashed_copy`)."""
    rehashed_copy(ds, ds, checksum, claim=claim)
