"""`index_webdataset`: index existing WebDataset tar shards in place (kind "webdataset").

Samples are grouped exactly as the `webdataset` library groups them: regular files only,
``__*__`` metadata names skipped, key = name up to the first '.' of its basename,
extension lowercased, consecutive members with one key form one sample, per shard.
A sample's label is its ``cls`` (or ``class``, ``label``) member when that is an integer;
when any sample has one, dataset.json lists the classes (label = position): the names
given, else ``"0"`` ... ``"K-1"`` for the largest label K-1.
"""

from __future__ import annotations

import re
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from farfeed.checksum import DEFAULT_CHECKSUM, new_hasher
from farfeed.errors import ConfigError, DatasetExistsError, FormatError
from farfeed.format.builder import SPLIT_ORDER, IndexBuilder, write_index
from farfeed.format.meta import DATASET_JSON
from farfeed.format.report import PackReport, progress_bar

_KEY_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
_META = re.compile(r"__[^/]*__($|/)")
LABEL_EXTS = ("cls", "class", "label")

Members = list[tuple[str, int, int]]  # (ext, absolute data offset, size)


def _members(path: Path) -> list[tuple[str, str, int, int]]:
    """(key, ext, data offset, size) of every member webdataset would yield, in tar order."""
    found = []
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                name = info.name
                if not info.isreg() or (
                    "/" not in name and name.startswith("__") and name.endswith("__")
                ):
                    continue
                if _META.match(name):
                    continue
                match = _KEY_EXT.match(name)
                if match is None:
                    continue
                found.append((match.group(1), match.group(2).lower(), info.offset_data, info.size))
    except (tarfile.TarError, OSError) as exc:
        raise FormatError(f"{path}: not a readable tar file ({exc})") from None
    return found


def _label(ext_data: dict[str, bytes]) -> int:
    for ext in LABEL_EXTS:
        text = ext_data.get(ext, b"").strip()
        if text and re.fullmatch(rb"-?\d+", text):
            return int(text)
    return -1


def _split_of(shard: str) -> str:
    prefix = shard.split("-", 1)[0] if "-" in shard else ""
    return prefix if prefix in SPLIT_ORDER else "train"


def _hash_range(f: BinaryIO, offset: int, length: int, *, where: str) -> int:
    """`DEFAULT_CHECKSUM` of ``length`` bytes at ``offset``, read in pieces (spans can be large)."""
    h = new_hasher(DEFAULT_CHECKSUM)
    f.seek(offset)
    while length:
        piece = f.read(min(length, 1 << 22))
        if not piece:
            raise FormatError(f"{where}: shard ends inside the sample")
        h.update(piece)
        length -= len(piece)
    return h.intdigest()


def _index_shard(path: Path, shard: int, builder: IndexBuilder) -> None:
    groups: list[tuple[str, Members]] = []
    for key, ext, offset, size in _members(path):
        if not groups or groups[-1][0] != key:
            groups.append((key, []))
        elif any(e == ext for e, _, _ in groups[-1][1]):
            raise FormatError(f"{path}: sample {key!r} has two members with extension {ext!r}")
        groups[-1][1].append((ext, offset, size))
    with open(path, "rb") as f:
        for key, members in groups:
            start = members[0][1]
            end = members[-1][1] + members[-1][2]
            digest = _hash_range(f, start, end - start, where=f"{path}, sample {key!r}")
            small = {}
            for ext, offset, size in members:
                if ext in LABEL_EXTS and size <= 32:
                    f.seek(offset)
                    small[ext] = f.read(size)
            builder.add_sample(
                shard=shard,
                offset=start,
                size=end - start,
                checksum=digest,
                label=_label(small),
                key=key,
                members=[(e, o - start, n) for e, o, n in members],
            )


def class_list(labels: np.ndarray, names: Sequence[str] | None = None) -> list[str] | None:
    """dataset.json's ``classes`` for these sample labels: ``names`` (checked to cover every
    label), else ``"0"`` ... ``"K-1"`` for the largest label K-1; None when no label is >= 0."""
    top = int(labels.max()) if len(labels) else -1
    if names is None:
        return None if top < 0 else [str(k) for k in range(top + 1)]
    names = list(names)
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ConfigError(f"class names must be non-empty strings, got {names[:5]!r}")
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"class names must differ; named twice: {twice[:5]}")
    if top < 0:
        raise ConfigError("class names were given, but no sample has an integer cls/class/label member")
    if top >= len(names):
        raise ConfigError(f"the shards have labels up to {top}, but only {len(names)} class names were given")
    return names


def index_webdataset(
    directory: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = False,
    classes: Sequence[str] | None = None,
) -> PackReport:
    """Write dataset.json + index.npz beside the ``*.tar`` shards in ``directory`` (never rewrites them).

    ``overwrite``: re-index a folder that already has a dataset.json. ``progress``: show a
    progress bar. ``classes``: class names, label = position (default ``"0"`` ... ``"K-1"``
    when the samples carry integer labels; see the module docstring).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"{str(directory)!r} is not a directory")
    if (directory / DATASET_JSON).exists() and not overwrite:
        raise DatasetExistsError(
            f"{directory} already holds {DATASET_JSON}; pass overwrite=True / --overwrite to re-index"
        )
    shards = sorted(
        p for p in directory.glob("*.tar") if p.is_file() and not p.name.startswith(".")
    )
    if not shards:
        raise FormatError(f"no *.tar shards in {directory}")
    started = time.perf_counter()
    builder = IndexBuilder()
    with progress_bar("indexing shards", len(shards), enabled=progress) as advance:
        for path in shards:
            shard = builder.add_shard(path.name, _split_of(path.name))
            builder.set_shard_bytes(shard, path.stat().st_size)
            _index_shard(path, shard, builder)
            advance(1)
    if not len(builder):
        raise FormatError(f"the shards in {directory} hold no WebDataset samples (KEY.EXT members)")
    arrays = builder.arrays()
    names = class_list(arrays["label"], classes)
    write_index(directory, builder.metadata("webdataset", classes=names), arrays)
    return PackReport(
        samples=len(builder),
        bytes=sum(builder.shard_bytes),
        shards=len(shards),
        seconds=time.perf_counter() - started,
        path=directory,
    )
