"""Find the images of an ImageNet-layout folder, in a deterministic sorted order.

Two layouts: ``SRC/train/<class>/*`` (+ optional ``SRC/val/<class>/*``, ``SRC/test/<class>/*``),
or directly ``SRC/<class>/*`` (all in split "train"). Hidden names are ignored.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from farfeed.errors import ConfigError, FormatError

SPLITS = ("train", "val", "test")
#: PIL format -> extension, for files that have none.
FORMAT_EXT = {
    "JPEG": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tif",
}


@dataclass(frozen=True)
class SourceImage:
    """One image file to pack: where it is, its split, label and WebDataset key."""

    path: Path
    split: str
    label: int
    key: str


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _visible_files(folder: Path) -> list[Path]:
    files = (p for p in folder.rglob("*") if p.is_file())
    rel = (
        p for p in files if not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    return sorted(rel)


def scan_image_folder(src: Path) -> tuple[list[str], list[SourceImage]]:
    """Class names (sorted union; label = position) and every candidate file, sorted by split/class/path."""
    src = Path(src)
    if not src.is_dir():
        raise ConfigError(f"source {str(src)!r} is not a directory")
    if (src / "train").is_dir():
        split_dirs = [(name, src / name) for name in SPLITS if (src / name).is_dir()]
    else:
        split_dirs = [("train", src)]
    per_split: list[tuple[str, list[Path]]] = []
    for split, folder in split_dirs:
        class_dirs = _visible_dirs(folder)
        stray = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        if not class_dirs and stray:
            raise FormatError(
                f"{folder} holds {len(stray)} files but no class folders: "
                f"put them in {folder}/<class>/ (label = class folder)"
            )
        per_split.append((split, class_dirs))
    classes = sorted({d.name for _, dirs in per_split for d in dirs})
    label = {name: i for i, name in enumerate(classes)}
    images: list[SourceImage] = []
    used: set[str] = set()
    for split, class_dirs in per_split:
        for class_dir in class_dirs:
            for path in _visible_files(class_dir):
                rel = path.relative_to(class_dir)
                stem = "/".join([*rel.parts[:-1], rel.stem.replace(".", "_")])
                key = unique_key(f"{split}/{class_dir.name}/{stem}", used)
                images.append(SourceImage(path, split, label[class_dir.name], key))
    if not images:
        raise FormatError(
            f"no images found in {src}: expected SRC/train/<class>/*.jpg (and optional "
            "SRC/val/<class>/...) or SRC/<class>/*.jpg"
        )
    return classes, images


def unique_key(key: str, used: set[str]) -> str:
    """``key``, or ``key_1``, ``key_2``... if already taken; records the result in ``used``."""
    candidate, n = key, 0
    while candidate in used:
        n += 1
        candidate = f"{key}_{n}"
    used.add(candidate)
    return candidate


def image_extension(path: Path, data: bytes) -> str:
    """The member extension for an image file, after checking that it is an image.

    Keeps the file's own extension, lowercased (jpg, jpeg, png, ...); derives one from the
    detected format when the name has none. `FormatError` names a file that is no image.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            img.verify()
    except Image.DecompressionBombError:
        fmt = ""  # a very large image is still an image: packing never decodes it
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        reason = (
            "not an image"
            if isinstance(exc, UnidentifiedImageError)
            else f"unreadable image ({exc})"
        )
        raise FormatError(f"{path}: {reason}") from None
    ext = path.suffix[1:].lower()
    return ext or FORMAT_EXT.get(fmt, fmt.lower() or "img")
