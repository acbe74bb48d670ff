"""Create a dataset folder atomically: write into a hidden temp folder beside OUT, then rename.

A half-written OUT is never a dataset: readers see no OUT, the old OUT, or the new one.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from farfeed.errors import ConfigError, DatasetExistsError
from farfeed.format.meta import DATASET_JSON


def check_output(out: Path, *, overwrite: bool) -> None:
    """Refuse up front an OUT that is a file, a non-empty non-dataset, or a dataset (unless overwrite)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"output {str(out)!r} exists and is not a directory")
    if (out / DATASET_JSON).exists():
        if not overwrite:
            raise DatasetExistsError(
                f"{out} already holds a dataset ({DATASET_JSON}); pass overwrite=True / --overwrite to replace it"
            )
        return
    if any(out.iterdir()):
        raise DatasetExistsError(
            f"{out} exists and is not empty but holds no {DATASET_JSON}; refusing to write into it "
            "(choose a new or empty folder)"
        )


@contextmanager
def staged_output(out: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temp folder to fill; on success it replaces ``out``, on error it is removed."""
    out = Path(out).absolute()
    check_output(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{secrets.token_hex(4)}"
    tmp = out.parent / f".{out.name}.farfeed-tmp-{tag}"
    tmp.mkdir()
    try:
        yield tmp
        check_output(out, overwrite=overwrite)  # someone may have written meanwhile
        old = None
        if out.exists():
            if any(out.iterdir()):
                old = out.parent / f".{out.name}.farfeed-old-{tag}"
                os.rename(out, old)
            else:
                out.rmdir()
        os.rename(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
