"""`make_sample_images`: an ImageNet-like folder of JPEGs, made up, deterministic, learnable.

Each class has its own colour and shape (ellipse, box, triangle, bars) at its own angle;
position, scale, background and noise vary per image. The fine noise makes each 320x320
JPEG ~110 KB, like ImageNet's average, so byte rates are realistic; at 32-64 px a small
CNN still learns the classes from colour and shape.
"""

from __future__ import annotations

import colorsys
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from farfeed.errors import ConfigError
from farfeed.format.report import progress_bar

SIDE = 320
QUALITY = 90
SHAPES = ("ellipse", "box", "triangle", "bars")


def class_name(k: int) -> str:
    """Folder name of class ``k`` ("class_000", ...)."""
    return f"class_{k:03d}"


def _class_style(k: int, classes: int) -> tuple[tuple[int, int, int], str, float]:
    """Colour, shape and angle (radians) of class ``k``: all distinct for classes <= 40ish."""
    hue = (k * 0.618034) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    shape = SHAPES[k % len(SHAPES)]
    angle = (k // len(SHAPES)) * math.pi / max(2, 1 + (classes - 1) // len(SHAPES)) / 2
    return (int(r * 255), int(g * 255), int(b * 255)), shape, angle


def _rect(
    cx: float, cy: float, half_w: float, half_h: float, angle: float
) -> list[tuple[float, float]]:
    """Corners of a ``2*half_w`` x ``2*half_h`` rectangle centred at (cx, cy), turned by ``angle``."""
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in
            ((-half_w, -half_h), (half_w, -half_h), (half_w, half_h), (-half_w, half_h))]  # fmt: skip


def _triangle(cx: float, cy: float, radius: float, angle: float) -> list[tuple[float, float]]:
    return [(cx + radius * math.cos(angle + t), cy + radius * math.sin(angle + t))
            for t in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]  # fmt: skip


def render_image(k: int, classes: int, rng: np.random.Generator) -> bytes:
    """One JPEG of class ``k`` drawn with ``rng`` (same rng state, same bytes)."""
    colour, shape, angle = _class_style(k, classes)
    bg = tuple(int(v) for v in rng.integers(20, 110, size=3))
    img = Image.new("RGB", (SIDE, SIDE), bg)  # type: ignore[arg-type]
    draw = ImageDraw.Draw(img)
    radius = float(rng.uniform(0.22, 0.4)) * SIDE
    cx, cy = (float(v) for v in rng.uniform(radius * 0.8, SIDE - radius * 0.8, size=2))
    jitter = tuple(
        int(min(255, max(0, c + d)))
        for c, d in zip(colour, rng.integers(-20, 21, size=3), strict=True)
    )
    if shape == "ellipse":
        # an ellipse turned by `angle`: drawn as a polygon of 48 points
        pts = [
            (radius * math.cos(t), radius * 0.6 * math.sin(t))
            for t in np.linspace(0, 2 * math.pi, 48)
        ]
        c, s = math.cos(angle), math.sin(angle)
        draw.polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts], fill=jitter)
    elif shape == "box":
        draw.polygon(_rect(cx, cy, radius * 0.7, radius * 0.7, angle), fill=jitter)
    elif shape == "triangle":
        draw.polygon(_triangle(cx, cy, radius, angle), fill=jitter)
    else:  # three parallel bars
        for off in (-0.6, 0.0, 0.6):
            bx, by = cx - off * radius * math.sin(angle), cy + off * radius * math.cos(angle)
            draw.polygon(_rect(bx, by, radius, radius * 0.15, angle), fill=jitter)
    pixels = np.asarray(img, dtype=np.int16)
    amp = int(rng.integers(30, 41))
    pixels = pixels + rng.integers(-amp, amp + 1, size=pixels.shape, dtype=np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
        out, "JPEG", quality=QUALITY, subsampling=0
    )
    return out.getvalue()


def make_sample_images(
    out: str | Path,
    *,
    count: int,
    seed: int = 0,
    classes: int = 10,
    val_fraction: float = 0.1,
    progress: bool = False,
) -> Path:
    """Write ``OUT/train/<class>/<id>.jpg`` (``count`` images) and ``OUT/val/...`` (+ val_fraction).

    >>> make_sample_images("sample-images", count=2000, seed=0)
    """
    if not isinstance(count, int) or count <= 0:
        raise ConfigError(f"count must be a positive int, got {count!r}")
    if not isinstance(classes, int) or not 1 <= classes <= 1000:
        raise ConfigError(f"classes must be an int in [1, 1000], got {classes!r}")
    if not 0.0 <= val_fraction <= 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1], got {val_fraction!r}")
    out = Path(out)
    plan = [("train", count), ("val", round(count * val_fraction))]
    for split, n in plan:
        for k in range(min(classes, n)):
            (out / split / class_name(k)).mkdir(parents=True, exist_ok=True)
    with progress_bar("making images", sum(n for _, n in plan), enabled=progress) as advance:
        for code, (split, n) in enumerate(plan):
            for i in range(n):
                k = i % classes
                rng = np.random.default_rng([seed, code, i])
                path = out / split / class_name(k) / f"{i:07d}.jpg"
                path.write_bytes(render_image(k, classes, rng))
                advance(1)
    return out
