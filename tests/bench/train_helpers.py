"""Shared helpers for the training-benchmark tests: tiny real datasets and sites."""

from __future__ import annotations

from pathlib import Path

from farfeed.format.pack_images import pack_images
from farfeed.format.pack_text import pack_text
from farfeed.format.sample_images import make_sample_images
from farfeed.format.sample_text import make_sample_text


def make_root(root: Path, *, images: int = 64, text_bytes: int = 256 * 1024) -> Path:
    """A storage root holding ``images`` (sample JPEGs, 4 classes) and ``text`` (byte tokens)."""
    make_sample_images(root.parent / "src-images", count=images, classes=4, val_fraction=0.25)
    pack_images(root.parent / "src-images", root / "images", shard_size="1MiB")
    make_sample_text(root.parent / "src-text", max_bytes=text_bytes)
    pack_text(root.parent / "src-text", root / "text", tokenizer="byte", val_fraction=0.1)
    (root / "checkpoints").mkdir()
    return root


def remote_links() -> dict[str, object]:
    """The near (0 ms) and remote (tokyo-fukuoka, 15 ms) links of a bench."""
    from farfeed.wan import Link

    return {"near": Link(rtt=0.0), "remote": Link.from_preset("tokyo-fukuoka")}
