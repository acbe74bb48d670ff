"""A checkpoint's manifest: what it holds, how to verify it, and the commit marker.

The manifest is written last, in one atomic write, after every byte of the tensor
file has arrived and been checked; a step directory without one is an upload that
never finished and is ignored. See README.md beside this file for the layout.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from farfeed.errors import CheckpointError, ConfigError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TENSORS = "tensors.safetensors"
_STEP_DIR = re.compile(r"^step-(\d{12})$")


def step_dir(step: int) -> str:
    """The directory name of ``step``; zero-padded so names sort like numbers."""
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step < 10**12:
        raise ConfigError(f"step must be an int in 0..10**12-1, got {step!r}")
    return f"step-{step:012d}"


def parse_step_dir(name: str) -> int | None:
    """The step a directory name stands for, or None if it is not a step directory."""
    m = _STEP_DIR.match(name)
    return int(m.group(1)) if m else None


@dataclass(frozen=True, slots=True)
class DataFile:
    """The tensor file: its size, part size, one xxh64 per part and one for the whole."""

    path: str
    size: int
    part_size: int
    parts: tuple[str, ...]
    xxh64: str

    def part_range(self, i: int) -> tuple[int, int]:
        """(offset, length) of part ``i``."""
        start = i * self.part_size
        return start, min(self.part_size, self.size - start)


@dataclass(frozen=True, slots=True)
class Manifest:
    """Everything about one checkpoint except its tensor bytes."""

    step: int
    created: float
    data: DataFile
    tensors: int
    state: Any
    config: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """The manifest as UTF-8 JSON (NaN never appears: the tree tags non-finite floats)."""
        doc = {
            "farfeed_checkpoint": FORMAT_VERSION,
            "step": self.step,
            "created": self.created,
            "tensors": self.tensors,
            "data": {
                "path": self.data.path,
                "size": self.data.size,
                "part_size": self.data.part_size,
                "parts": list(self.data.parts),
                "xxh64": self.data.xxh64,
            },
            "config": self.config,
            "state": self.state,
            **self.extra,
        }
        try:
            return json.dumps(doc, allow_nan=False, indent=1).encode()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"checkpoint config is not JSON-serialisable: {exc}") from None

    @classmethod
    def from_json(cls, raw: bytes, *, where: str) -> Manifest:
        """Parse and check a manifest; CheckpointError naming ``where`` when it is malformed."""
        try:
            doc = json.loads(raw)
            version = doc["farfeed_checkpoint"]
            d = doc["data"]
            data = DataFile(
                path=str(d["path"]),
                size=int(d["size"]),
                part_size=int(d["part_size"]),
                parts=tuple(str(p) for p in d["parts"]),
                xxh64=str(d["xxh64"]),
            )
            known = {"farfeed_checkpoint", "step", "created", "tensors", "data", "config", "state"}
            man = cls(
                step=int(doc["step"]),
                created=float(doc["created"]),
                data=data,
                tensors=int(doc["tensors"]),
                state=doc["state"],
                config=doc.get("config"),
                extra={k: v for k, v in doc.items() if k not in known},
            )
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint manifest {where} is malformed ({type(exc).__name__}: {exc})") from None
        if version != FORMAT_VERSION:
            raise CheckpointError(f"checkpoint manifest {where} has format {version!r}; this farfeed reads {FORMAT_VERSION}")
        expected = -(-data.size // data.part_size) if data.part_size > 0 else -1
        if data.size < 0 or data.part_size <= 0 or expected != len(data.parts) or data.path != TENSORS:
            raise CheckpointError(
                f"checkpoint manifest {where} is inconsistent: size {data.size}, part size "
                f"{data.part_size}, {len(data.parts)} part checksums, data path {data.path!r}"
            )
        return man


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """One committed checkpoint, as `latest` and `list_checkpoints` report it."""

    #: URL of the checkpoint's step directory.
    url: str
    #: The training step it was saved as.
    step: int
    #: Bytes of the tensor file plus the manifest.
    bytes: int
    #: Unix time the save was started (the snapshot).
    created: float
    #: The resolved run configuration saved with it (None if none was given).
    config: dict[str, Any] | None = None
    #: Number of tensors in the tensor file.
    tensors: int = 0
    #: xxh64 of the whole tensor file, 16 hex digits.
    xxh64: str = ""
