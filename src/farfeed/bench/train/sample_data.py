"""The storage site of `farfeed demo` and `farfeed bench train` without --data: sample
images and text, made and packed once under one root.

    root = ensure_sample_data(Path("demo-out/storage"), images=800, text_bytes=2 * 2**20)

Idempotent: a dataset already packed there (with the asked size) is kept, so a second
demo run starts training at once. Also publishes a small base Llama for
``--lora`` runs (`farfeed.bench.train.workloads.lora.publish_base`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from farfeed.errors import ConfigError

IMAGES = "sample-images"
TEXT = "sample-text"
#: Dataset folder name under the storage root, by workload.
DATASETS = {"resnet": IMAGES, "llm": TEXT}


def ensure_images(root: Path, *, count: int, seed: int = 0, classes: int = 10) -> Path:
    """``root/sample-images``: ``count`` ImageNet-like JPEGs (+10 % val), packed."""
    from farfeed.format.pack_images import pack_images
    from farfeed.format.sample_images import make_sample_images

    out = root / IMAGES
    if _samples(out) == count + round(count * 0.1):
        return out
    if count < classes * 4:
        raise ConfigError(
            f"need at least {classes * 4} images for {classes} classes, got {count!r}"
        )
    src = root.parent / "src-images"
    shutil.rmtree(src, ignore_errors=True)
    make_sample_images(src, count=count, seed=seed, classes=classes, val_fraction=0.1)
    pack_images(src, out, shard_size="8MiB", overwrite=True)
    shutil.rmtree(src, ignore_errors=True)
    return out


def _samples(folder: Path) -> int | None:
    """Samples in the packed dataset at ``folder``; None when there is none (or it is broken)."""
    from farfeed.errors import FormatError
    from farfeed.format.meta import DATASET_JSON, DatasetMeta

    try:
        return DatasetMeta.from_json((folder / DATASET_JSON).read_bytes()).samples
    except (OSError, FormatError):
        return None


def ensure_text(root: Path, *, max_bytes: int) -> Path:
    """``root/sample-text``: Python's own docs and sources, byte-tokenized, packed."""
    from farfeed.format.pack_text import pack_text
    from farfeed.format.sample_text import make_sample_text

    out = root / TEXT
    if (out / "dataset.json").is_file():
        return out
    src = root.parent / "src-text"
    shutil.rmtree(src, ignore_errors=True)
    make_sample_text(src, max_bytes=max_bytes)
    pack_text(src, out, tokenizer="byte", val_fraction=0.05, overwrite=True)
    shutil.rmtree(src, ignore_errors=True)
    return out


def ensure_lora_base(root: Path, *, size: str, vocab_size: int, seq_len: int) -> str:
    """``root/models/llama-SIZE``: a base Llama for LoRA runs; returns its name under root."""
    from farfeed.bench.train.workloads.lora import WEIGHTS_NAME, publish_base

    name = f"models/llama-{size}-v{vocab_size}"
    if not (root / name / WEIGHTS_NAME).is_file():
        publish_base(root / name, size=size, vocab_size=vocab_size, seq_len=seq_len)
    return name


def ensure_sample_data(
    root: Path,
    *,
    workloads: tuple[str, ...] = ("resnet", "llm"),
    images: int = 800,
    text_bytes: int = 2 * 2**20,
    seed: int = 0,
    on_status: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Make and pack what ``workloads`` need under ``root``; returns dataset folder by workload."""
    status = on_status or (lambda _msg: None)
    unknown = sorted(set(workloads) - set(DATASETS))
    if unknown:
        raise ConfigError(f"unknown workloads {unknown!r}; known: {sorted(DATASETS)}")
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    if "resnet" in workloads:
        status(f"sample images: {images} JPEGs (+10 % val) -> {root / IMAGES}")
        out["resnet"] = ensure_images(root, count=images, seed=seed)
    if "llm" in workloads:
        status(f"sample text: {text_bytes / 2**20:.1f} MiB of Python docs/sources -> {root / TEXT}")
        out["llm"] = ensure_text(root, max_bytes=text_bytes)
    return out
