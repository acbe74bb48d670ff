"""make_sample_images: layout, realistic sizes, determinism, class-dependent content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from farfeed.errors import ConfigError
from farfeed.format import make_sample_images


def test_layout_sizes_and_determinism(tmp_path: Path) -> None:
    a = make_sample_images(tmp_path / "a", count=30, seed=7, classes=5)
    b = make_sample_images(tmp_path / "b", count=30, seed=7, classes=5)
    c = make_sample_images(tmp_path / "c", count=30, seed=8, classes=5)
    files = sorted(p.relative_to(a) for p in a.rglob("*.jpg"))
    assert len(files) == 33 and sum(1 for f in files if f.parts[0] == "val") == 3
    assert {f.parts[1] for f in files} == {f"class_{k:03d}" for k in range(5)}
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files)
    sizes = [(a / f).stat().st_size for f in files]
    assert 95_000 <= np.mean(sizes) <= 125_000  # ImageNet-like ~110 KB
    with Image.open(a / files[0]) as img:
        assert img.format == "JPEG" and img.size == (320, 320)


def test_classes_differ_at_low_resolution(tmp_path: Path) -> None:
    """At 32 px the class colour still shows: a nearest-centroid rule beats chance by far."""
    out = make_sample_images(tmp_path / "img", count=80, seed=0, classes=4, val_fraction=0.5)

    def features(split: str) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for path in sorted((out / split).rglob("*.jpg")):
            with Image.open(path) as img:
                small = np.asarray(img.convert("RGB").resize((32, 32)), dtype=np.float64)
            pixels = small.reshape(-1, 3)
            xs.append(np.concatenate([pixels.mean(0), np.percentile(pixels, 90, axis=0)]))
            ys.append(int(path.parent.name.split("_")[1]))
        return np.array(xs), np.array(ys)

    x, y = features("train")
    centroids = np.stack([x[y == k].mean(0) for k in range(4)])
    vx, vy = features("val")
    guess = np.argmin(((vx[:, None, :] - centroids[None]) ** 2).sum(2), axis=1)
    assert (guess == vy).mean() >= 0.8


def test_bad_arguments(tmp_path: Path) -> None:
    for kwargs, bad in (
        ({"count": 0}, "0"),
        ({"count": 5, "classes": 0}, "0"),
        ({"count": 5, "val_fraction": 2.0}, "2.0"),
    ):
        with pytest.raises(ConfigError, match=bad):
            make_sample_images(tmp_path / "x", **kwargs)  # type: ignore[arg-type]
