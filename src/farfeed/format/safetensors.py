"""The safetensors file layout, read and written without the file on disk.

A safetensors file is ``u64 little-endian N`` + ``N bytes of JSON header`` + the raw
tensor bytes; the header maps each name to ``dtype``, ``shape`` and ``data_offsets``
(relative to the end of the header). Knowing the header is enough to read any tensor
with one range read, which is what lets weights and checkpoints load in parallel
across the link. farfeed writes checkpoints in this layout too, so any safetensors
tool can open a checkpoint's tensors.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from farfeed.errors import ConfigError, FormatError

#: safetensors dtype names and their torch dtypes (the stable subset of the spec).
DTYPES: dict[str, torch.dtype] = {
    "BOOL": torch.bool,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I16": torch.int16,
    "U16": torch.uint16,
    "I32": torch.int32,
    "U32": torch.uint32,
    "I64": torch.int64,
    "U64": torch.uint64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "F64": torch.float64,
    "C64": torch.complex64,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
NAMES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}

#: Bytes read first when a header's size is not yet known (covers nearly every header).
HEADER_PROBE = 256 * 1024
#: A header larger than this is refused as corrupt rather than read into memory.
MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TensorEntry:
    """One tensor in a safetensors file: where its bytes lie in the data section."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        """Bytes the tensor occupies."""
        return self.end - self.begin


@dataclass(frozen=True, slots=True)
class Header:
    """A parsed safetensors header: ``data_start`` is the file offset of the data section."""

    entries: tuple[TensorEntry, ...]
    metadata: dict[str, str]
    data_start: int

    @property
    def file_size(self) -> int:
        """The size the whole file must have."""
        return self.data_start + max((e.end for e in self.entries), default=0)


def dtype_name(dtype: torch.dtype, *, where: str) -> str:
    """The safetensors name of ``dtype``; ConfigError naming ``where`` if it has none."""
    try:
        return NAMES[dtype]
    except KeyError:
        raise ConfigError(f"tensor {where!r} has dtype {dtype} which safetensors cannot hold") from None


def build_header(
    specs: Mapping[str, tuple[torch.dtype, tuple[int, ...], int]],
    *,
    metadata: Mapping[str, str] | None = None,
) -> tuple[bytes, dict[str, int]]:
    """Header bytes (length prefix included) for tensors given as name -> (dtype, shape, nbytes).

    Tensors are laid out largest element size first, so every tensor starts at a
    multiple of its element size (the header is padded to 8 bytes) and can be viewed
    in place. Returns the header and each tensor's offset in the data section.
    """
    order = sorted(specs, key=lambda n: -specs[n][0].itemsize)
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offsets: dict[str, int] = {}
    pos = 0
    for name in order:
        dtype, shape, nbytes = specs[name]
        header[name] = {
            "dtype": dtype_name(dtype, where=name),
            "shape": list(shape),
            "data_offsets": [pos, pos + nbytes],
        }
        offsets[name] = pos
        pos += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, offsets


def header_length(prefix: bytes, *, where: str) -> int:
    """Total bytes of length prefix + header, from the file's first 8 bytes."""
    if len(prefix) < 8:
        raise FormatError(f"{where}: {len(prefix)} bytes is too short for a safetensors file")
    (n,) = struct.unpack("<Q", prefix[:8])
    if n > MAX_HEADER:
        raise FormatError(f"{where}: safetensors header claims {n} bytes; not a safetensors file?")
    return 8 + n


def parse_header(raw: bytes, *, where: str) -> Header:
    """Parse prefix + header bytes (at least `header_length` of them); FormatError naming ``where``."""
    start = header_length(raw, where=where)
    if len(raw) < start:
        raise FormatError(f"{where}: header truncated ({len(raw)} of {start} bytes)")
    try:
        doc = json.loads(raw[8:start])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{where}: safetensors header is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise FormatError(f"{where}: safetensors header is not a JSON object")
    meta = doc.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise FormatError(f"{where}: __metadata__ is not an object")
    entries = [_entry(name, spec, where=where) for name, spec in doc.items()]
    entries.sort(key=lambda e: (e.begin, e.end))  # an empty tensor before its same-start neighbour
    pos = 0
    for e in entries:
        if e.begin != pos:
            raise FormatError(f"{where}: tensor {e.name!r} starts at {e.begin}, expected {pos}")
        pos = e.end
    return Header(tuple(entries), {str(k): str(v) for k, v in meta.items()}, start)


def _entry(name: str, spec: object, *, where: str) -> TensorEntry:
    if not isinstance(spec, dict):
        raise FormatError(f"{where}: entry {name!r} is not an object")
    try:
        dtype = DTYPES[spec["dtype"]]
        shape = tuple(int(d) for d in spec["shape"])
        begin, end = (int(x) for x in spec["data_offsets"])
    except (KeyError, TypeError, ValueError):
        raise FormatError(f"{where}: entry {name!r} is malformed or has an unknown dtype: {spec!r}") from None
    numel = 1
    for d in shape:
        if d < 0:
            raise FormatError(f"{where}: tensor {name!r} has a negative dimension {shape}")
        numel *= d
    if begin < 0 or end - begin != numel * dtype.itemsize:
        raise FormatError(
            f"{where}: tensor {name!r} spans {begin}..{end} but {dtype} {list(shape)} needs {numel * dtype.itemsize} bytes"
        )
    return TensorEntry(name, dtype, shape, begin, end)
