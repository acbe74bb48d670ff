"""farfeed: train where the GPUs are, keep the data where it lives.

Stream training data, checkpoints and weights across a long fat link (100 Gb/s,
10-20 ms RTT) from plain Python, with nothing written to disk at the GPU site.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from farfeed.errors import (
    AccessDeniedError,
    CertificateError,
    CheckpointError,
    ConfigError,
    FarfeedError,
    FormatError,
    IntegrityError,
    NotFoundError,
    StoreError,
    TransientError,
)

__version__ = "0.1.0"

__all__ = [
    "AccessDeniedError",
    "CertificateError",
    "CheckpointError",
    "ConfigError",
    "Dataset",
    "FarfeedError",
    "FormatError",
    "IntegrityError",
    "NotFoundError",
    "StoreError",
    "TransientError",
    "__version__",
]

if TYPE_CHECKING:  # pragma: no cover
    from farfeed.loader import Dataset


def __getattr__(name: str) -> Any:
    # torch is heavy and optional at the storage site: import the loader lazily.
    if name == "Dataset":
        from farfeed.loader import Dataset

        globals()[name] = Dataset  # imported once; later lookups skip this function
        return Dataset
    raise AttributeError(f"module 'farfeed' has no attribute {name!r}")
