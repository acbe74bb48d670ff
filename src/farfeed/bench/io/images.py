"""The data-bound job's storage site: the same real JPEGs twice, as most users keep them and as
farfeed reads them.

    files, shards = ensure_bound_images(Path("demo-out/storage"), count=2600)

- ``ROOT/bound-files/train/class_003/0000123.jpg``: one file per sample, the layout a
  torchvision ``ImageFolder`` reads, with ``ROOT/bound-files/train.txt`` listing
  ``PATH LABEL`` per line (paths relative to ``bound-files/``), so a reader across the link
  needs no directory listing;
- ``ROOT/bound-images``: the same files packed into shards with their index (`pack_images`).

The images are `make_sample_images`' ImageNet-like JPEGs (320x320, ~107 KB each).
Idempotent: a set holding at least ``count`` images is kept.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from farfeed.errors import ConfigError

FILES = "bound-files"
SHARDS = "bound-images"
LIST = "train.txt"
CLASSES = 10


def _listed(files: Path) -> list[str]:
    try:
        return [line for line in (files / LIST).read_text().splitlines() if line.strip()]
    except OSError:
        return []


def _packed(shards: Path) -> int:
    from farfeed.errors import FormatError
    from farfeed.format.meta import DATASET_JSON, DatasetMeta

    try:
        return DatasetMeta.from_json((shards / DATASET_JSON).read_bytes()).samples
    except (OSError, FormatError):
        return 0


def ensure_bound_images(root: Path, *, count: int, seed: int = 1) -> tuple[Path, Path]:
    """Make (or keep) ``count`` JPEGs under ``root`` as files and as shards; returns
    (the files folder, the packed dataset folder)."""
    from farfeed.format.pack_images import pack_images
    from farfeed.format.sample_images import class_name, make_sample_images

    if count < CLASSES * 4:
        raise ConfigError(f"the data-bound job needs at least {CLASSES * 4} images, got {count!r}")
    files, shards = root / FILES, root / SHARDS
    have = len(_listed(files))
    if have >= count and _packed(shards) == have:
        return files, shards
    shutil.rmtree(files, ignore_errors=True)
    make_sample_images(files, count=count, seed=seed, classes=CLASSES, val_fraction=0.0)
    lines = []
    for label in range(CLASSES):
        for path in sorted((files / "train" / class_name(label)).glob("*.jpg")):
            lines.append(f"{path.relative_to(files).as_posix()} {label}")
    pack_images(files, shards, shard_size="8MiB", overwrite=True)
    (files / LIST).write_text("\n".join(lines) + "\n")  # last: a complete set has its list
    os.sync()  # write the new files back now, not while the first trial is measured
    return files, shards


def mean_sample_bytes(files: Path) -> float:
    """Average size of the listed JPEGs, bytes (what one sample costs on the link)."""
    paths = [line.rsplit(" ", 1)[0] for line in _listed(files)]
    if not paths:
        raise ConfigError(
            f"no file list at {str(files / LIST)!r}: make it with ensure_bound_images"
        )
    return sum((files / p).stat().st_size for p in paths) / len(paths)
