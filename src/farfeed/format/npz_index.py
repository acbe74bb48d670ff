"""What every index kind shares: a dataset.json plus one npz of typed 1-D arrays, read
from bytes (fetched from any store) or from a dataset folder on local disk."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from farfeed.errors import FormatError
from farfeed.format.meta import DATASET_JSON, DatasetMeta

Buffer = bytes | bytearray | memoryview
I = TypeVar("I", bound="NpzIndex")  # noqa: E741 - the index class


def load_npz(source: Path | bytes, names: dict[str, Any], *, where: str) -> dict[str, np.ndarray]:
    """Read the named arrays from an npz (path or bytes) and check their dtypes."""
    try:
        with np.load(io.BytesIO(source) if isinstance(source, bytes) else source,
                     allow_pickle=False) as npz:  # fmt: skip
            missing = sorted(set(names) - set(npz.files))
            if missing:
                raise FormatError(f"{where}: missing arrays {missing}")
            arrays = {name: npz[name] for name in names}
    except FormatError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise FormatError(f"{where}: not a readable npz file ({exc})") from None
    for name, dtype in names.items():
        arr = arrays[name]
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, dtype):
            raise FormatError(
                f"{where}: array {name!r} has dtype {arr.dtype}{arr.shape}, expected 1-D {np.dtype(dtype).name}"
            )
    return arrays


def read_dataset_file(path: Path) -> bytes:
    """A file of a local dataset folder; `FormatError` naming it when it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FormatError(f"{path.parent} is not a farfeed dataset: no {path.name}") from None
    except OSError as exc:
        raise FormatError(f"cannot read {path}: {exc}") from None


class NpzIndex:
    """Base of `SampleIndex` and `TokenIndex`: built from a `DatasetMeta` and the arrays
    named in ``ARRAYS`` (name -> dtype), which subclasses check in ``__init__``."""

    ARRAYS: ClassVar[dict[str, Any]]

    def __init__(self, meta: DatasetMeta, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    @classmethod
    def from_bytes(cls: type[I], meta_json: bytes, index_npz: bytes) -> I:
        """Build from the bytes of dataset.json and index.npz (as fetched from any store)."""
        meta = DatasetMeta.from_json(meta_json)
        return cls(meta, load_npz(bytes(index_npz), cls.ARRAYS, where=meta.index))

    @classmethod
    def load(cls: type[I], directory: str | Path) -> I:
        """Load the index of a dataset folder on local disk."""
        directory = Path(directory)
        meta = DatasetMeta.from_json(read_dataset_file(directory / DATASET_JSON))
        where = str(directory / meta.index)
        return cls(meta, load_npz(directory / meta.index, cls.ARRAYS, where=where))
