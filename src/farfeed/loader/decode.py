"""Decoders, run in the DataLoader workers: raw dicts, images to tensors, token windows.

raw     {"__key__": "000123", "__index__": 123, "jpg": b"...", "cls": b"7"}
image   (float32 CHW tensor, normalised with ImageNet mean/std, int label)
batch   a `farfeed.loader.Batch` (see batch.py); `images.decode_images` decodes it on a device
tokens  (input_ids, labels): LongTensors of seq_len, labels shifted by one
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from farfeed.errors import FormatError

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp", "ppm", "bmp")
LABEL_KEYS = ("cls", "label", "cls.txt")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def geometry(image_size: int, *, train: bool) -> list[Any]:
    """RandomResizedCrop + horizontal flip for training, resize + center crop for eval."""
    from torchvision.transforms import v2

    if train:
        return [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
    return [v2.Resize(int(image_size * 256 / 224), antialias=True), v2.CenterCrop(image_size)]


def normalise() -> list[Any]:
    """uint8 -> float32 in [0, 1], then ImageNet mean/std."""
    import torch
    from torchvision.transforms import v2

    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]


def image_transform(image_size: int, *, train: bool) -> Callable[[Any], Any]:
    """PIL image -> normalised float CHW tensor: `geometry`, then `normalise`."""
    from torchvision.transforms import v2

    return v2.Compose([v2.ToImage(), *geometry(image_size, train=train), *normalise()])


def decode_image_sample(sample: dict[str, Any], transform: Callable[[Any], Any]) -> tuple[Any, int]:
    """One raw sample dict -> (transformed CHW float tensor, int label)."""
    import io

    from PIL import Image, UnidentifiedImageError

    key = next((k for k in IMAGE_KEYS if k in sample), None)
    if key is None:
        raise FormatError(
            f"sample {sample.get('__key__')!r} has no image member (looked for {IMAGE_KEYS}); "
            f"it has {sorted(k for k in sample if not k.startswith('__'))}"
        )
    try:
        with Image.open(io.BytesIO(sample[key])) as opened:
            image = opened.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise FormatError(
            f"sample {sample.get('__key__')!r}: cannot decode {key!r}: {exc}"
        ) from exc
    return transform(image), sample_label(sample)


def sample_label(sample: dict[str, Any]) -> int:
    """The integer class label of a sample (its ``cls`` member, or ``__label__``)."""
    if "__label__" in sample:
        return int(sample["__label__"])
    for k in LABEL_KEYS:
        if k in sample:
            value = sample[k]
            try:
                return int(value.decode() if isinstance(value, bytes) else value)
            except ValueError as exc:
                raise FormatError(
                    f"sample {sample.get('__key__')!r}: label {value!r} is not an int"
                ) from exc
    return -1


def token_window(data: bytes | memoryview, *, dtype: Any, seq_len: int) -> tuple[Any, Any]:
    """``seq_len + 1`` tokens -> (input_ids, labels), LongTensors of ``seq_len``."""
    import numpy as np
    import torch

    tokens = np.frombuffer(data, dtype=dtype)
    if len(tokens) != seq_len + 1:
        raise FormatError(
            f"token window has {len(tokens)} tokens, expected seq_len + 1 = {seq_len + 1}"
        )
    window = torch.from_numpy(tokens.astype(np.int64))
    return window[:-1].clone(), window[1:].clone()
