"""dataset.json: the metadata every farfeed dataset carries, read and validated.

Parsing is strict (a dataset that is not what it claims raises `FormatError` naming the
field), so the loader and the gateway can trust what they get.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farfeed.checksum import CHECKSUMS
from farfeed.errors import ConfigError, FormatError

DATASET_JSON = "dataset.json"
INDEX_FILE = "index.npz"
FORMAT_NAME = "farfeed"
FORMAT_VERSION = 1
KINDS = ("images", "webdataset", "tokens")
CREATED_BY = "farfeed 0.1.0"


@dataclass(frozen=True)
class DatasetMeta:
    """The parsed dataset.json; ``raw`` keeps every field, known or not.

    >>> DatasetMeta.from_json(Path("imagenet/dataset.json").read_bytes()).samples
    1281167
    """

    kind: str
    format_version: int
    samples: int
    nbytes: int
    shards: tuple[str, ...]
    shard_bytes: tuple[int, ...]
    splits: dict[str, dict[str, Any]]
    index: str
    checksum: str = "xxh64"
    extensions: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def split_names(self) -> list[str]:
        """Split names in dataset.json order; the ``split`` index array refers to these positions."""
        return list(self.splits)

    @classmethod
    def from_json(cls, data: bytes | str) -> DatasetMeta:
        """Parse and validate dataset.json bytes; `FormatError` says what is wrong."""
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FormatError(f"{DATASET_JSON} is not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise FormatError(f"{DATASET_JSON} must hold a JSON object, got {type(obj).__name__}")
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> DatasetMeta:
        """Validate a dataset.json object (already decoded)."""
        if obj.get("format") != FORMAT_NAME:
            raise FormatError(
                f"{DATASET_JSON}: 'format' must be {FORMAT_NAME!r}, got {obj.get('format')!r}"
            )
        version = _get(obj, "format_version", int)
        if version != FORMAT_VERSION:
            raise FormatError(
                f"{DATASET_JSON}: format_version {version!r} is not supported "
                f"(this farfeed reads version {FORMAT_VERSION})"
            )
        kind = _get(obj, "kind", str)
        if kind not in KINDS:
            raise FormatError(f"{DATASET_JSON}: unknown kind {kind!r}, expected one of {KINDS}")
        shards = tuple(_get(obj, "shards", list))
        for name in shards:
            check_object_name(name, what="shard name")
        shard_bytes = tuple(_get(obj, "shard_bytes", list))
        if len(shard_bytes) != len(shards) or not all(_is_count(b) for b in shard_bytes):
            raise FormatError(f"{DATASET_JSON}: 'shard_bytes' must list one size per shard")
        splits = _get(obj, "splits", dict)
        if not all(isinstance(k, str) and isinstance(v, dict) for k, v in splits.items()):
            raise FormatError(f"{DATASET_JSON}: 'splits' must map names to objects")
        index = _get(obj, "index", str)
        check_object_name(index, what="index name")
        checksum = obj.get("checksum", "xxh64")
        if checksum not in CHECKSUMS:
            raise FormatError(
                f"{DATASET_JSON}: unsupported checksum {checksum!r} (this farfeed reads "
                f"{', '.join(CHECKSUMS)})"
            )
        extensions = tuple(obj.get("extensions", ()))
        classes = tuple(obj.get("classes") or ())
        if not all(isinstance(e, str) for e in extensions + classes):
            raise FormatError(
                f"{DATASET_JSON}: 'extensions' and 'classes' must be lists of strings"
            )
        samples, nbytes = _get(obj, "samples", int), _get(obj, "bytes", int)
        if samples < 0 or nbytes < 0:
            raise FormatError(
                f"{DATASET_JSON}: negative 'samples' or 'bytes' ({samples}, {nbytes})"
            )
        return cls(
            kind=kind,
            format_version=version,
            samples=samples,
            nbytes=nbytes,
            shards=shards,
            shard_bytes=shard_bytes,
            splits=splits,
            index=index,
            checksum=checksum,
            extensions=extensions,
            classes=classes,
            raw=obj,
        )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _get(obj: dict[str, Any], key: str, typ: type) -> Any:
    if key not in obj:
        raise FormatError(f"{DATASET_JSON}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise FormatError(
            f"{DATASET_JSON}: field {key!r} must be {typ.__name__}, got {value!r:.80}"
        )
    return value


def check_object_name(name: Any, *, what: str) -> None:
    """Refuse names that could leave the dataset folder ('..', absolute, backslash, NUL)."""
    bad = (
        not isinstance(name, str)
        or not name
        or name.startswith("/")
        or "\\" in name
        or "\0" in name
        or any(part in ("", ".", "..") for part in name.split("/"))
    )
    if bad:
        raise FormatError(f"{DATASET_JSON}: bad {what} {name!r}: must be a plain relative path")


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([a-zA-Z]*)\s*$")
_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip


def parse_size(text: str | int) -> int:
    """Bytes from "64MB" (10**6), "1GiB" (2**30), "256M" (binary, as rclone) or a plain count.

    >>> parse_size("64MB"), parse_size("1GiB"), parse_size(4096)
    (64000000, 1073741824, 4096)
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _SIZE_RE.match(str(text))
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _UNITS:
            raise ConfigError(
                f"bad size {text!r}: expected bytes or a number with a unit (KB, MB, GB, KiB, MiB, GiB)"
            )
        value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise ConfigError(f"size must be positive, got {text!r}")
    return value


def write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    """Write JSON to ``path`` via a temp file and rename, so readers never see half of it."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(json.dumps(obj, indent=1).encode() + b"\n")
    os.replace(tmp, path)
