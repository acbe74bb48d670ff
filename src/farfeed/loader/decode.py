"""Decoders, run in the DataLoader workers: raw dicts, images to tensors, token windows.

raw     {"__key__": "000123", "__index__": 123, "jpg": b"...", "cls": b"7"}
image   (image, int label): the RGB image through `image_pipeline` (or the Dataset's
        ``transform``); with ``as_dict``: {"image", "label", "__key__", "__index__"}
batch   a `farfeed.loader.Batch` (see batch.py); `images.decode_images` decodes it on a device
tokens  (input_ids, labels): LongTensors of seq_len, labels shifted by one; with
        ``as_dict``: {"input_ids", "labels", "__index__"}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from farfeed.errors import ConfigError, FormatError

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


def image_pipeline(
    size: int = 224, *, train: bool = True, augment: Sequence[Callable[[Any], Any]] = ()
) -> Any:
    """The pipeline ``decode="image"`` applies by default: an RGB PIL image in, a normalised
    float32 ``[3, size, size]`` tensor out (a torchvision ``v2.Compose``).

    ``size``: the square output side in pixels. ``train``: RandomResizedCrop(size) and a
    random horizontal flip; False: resize to ``size * 256 / 224`` and center-crop (the
    usual evaluation view). ``augment``: more v2 transforms, run after the crop on the
    uint8 image tensor, before the conversion to float and the ImageNet mean/std
    normalisation (e.g. ``v2.ColorJitter(0.4, 0.4, 0.4)``, ``v2.TrivialAugmentWide()``).

    >>> from torchvision.transforms import v2
    >>> ds = farfeed.Dataset(url, decode="image",
    ...                      transform=image_pipeline(224, augment=[v2.TrivialAugmentWide()]))
    >>> ds = farfeed.Dataset(url, decode="image",     # or add steps on the float tensor
    ...                      transform=v2.Compose([image_pipeline(224), v2.RandomErasing()]))
    """
    from torchvision.transforms import v2

    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError(f"image size must be an int >= 1, got {size!r}")
    if isinstance(augment, (str, bytes)) or not all(callable(t) for t in augment):
        raise ConfigError(f"augment must be a sequence of callables (v2 transforms), got {augment!r}")
    return v2.Compose([v2.ToImage(), *geometry(size, train=train), *augment, *normalise()])


def open_image(sample: dict[str, Any]) -> Any:
    """The sample's image member (jpg, png, webp...) as an RGB PIL image."""
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
            return opened.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise FormatError(
            f"sample {sample.get('__key__')!r}: cannot decode {key!r}: {exc}"
        ) from exc


def decode_image_sample(sample: dict[str, Any], transform: Callable[[Any], Any]) -> tuple[Any, int]:
    """One raw sample dict -> (``transform`` of its RGB image, int label)."""
    return transform(open_image(sample)), sample_label(sample)


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
