"""`pack_images`: an ImageNet-layout folder -> tar shards + index.npz + dataset.json.

Bytes are streamed untouched (no re-encoding); files are read by a few threads ahead of
the writer, so slow or remote source disks still pack at disk speed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from farfeed.errors import ConfigError, FormatError
from farfeed.format.builder import IndexBuilder, write_index
from farfeed.format.imagefolder import SourceImage, image_extension, scan_image_folder
from farfeed.format.meta import parse_size
from farfeed.format.output import staged_output
from farfeed.format.report import PackReport, progress_bar
from farfeed.format.tarwriter import ShardWriter

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_SHARD_SIZE = 256 * 2**20
READ_THREADS = 8
READ_AHEAD = 64


def bounded_map(
    fn: Callable[[T], R], items: Iterable[T], *, threads: int, ahead: int
) -> Iterator[R]:
    """``map(fn, items)`` on a thread pool, in order, with at most ``ahead`` items in flight."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="farfeed-read") as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _load(image: SourceImage) -> tuple[SourceImage, bytes | None, str]:
    """Read and check one file: (image, bytes and extension) or (image, None, reason)."""
    try:
        data = image.path.read_bytes()
        return image, data, image_extension(image.path, data)
    except FormatError as exc:
        return image, None, str(exc)
    except OSError as exc:
        return image, None, f"{image.path}: cannot read ({exc.strerror or exc})"


def pack_images(
    src: str | Path,
    out: str | Path,
    *,
    shard_size: int | str = DEFAULT_SHARD_SIZE,
    on_error: Literal["fail", "skip"] = "fail",
    overwrite: bool = False,
    shuffle_seed: int | None = None,
    progress: bool = False,
) -> PackReport:
    """Pack ``src`` (``SRC/train/<class>/*.jpg`` or ``SRC/<class>/*.jpg``) into dataset ``out``.

    Samples are written in sorted order (split, class, path), or with ``shuffle_seed``
    in a random order drawn from that seed, so that neighbours in a shard are unrelated:
    what a loader reading runs of neighbours needs (``farfeed.Dataset(shuffle_block=N)``).

    >>> pack_images("/data/imagenet", "/srv/farfeed/imagenet", shard_size="256MiB").summary()
    """
    size_limit = parse_size(shard_size)
    if on_error not in ("fail", "skip"):
        raise ConfigError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    src, out = Path(src).absolute(), Path(out).absolute()
    if out == src or src in out.parents:
        raise ConfigError(f"output {str(out)!r} must not be inside the source folder {str(src)!r}")
    started = time.perf_counter()
    classes, images = scan_image_folder(src)
    if shuffle_seed is not None:
        if not isinstance(shuffle_seed, int) or isinstance(shuffle_seed, bool) or shuffle_seed < 0:
            raise ConfigError(f"shuffle_seed must be an int >= 0 or None, got {shuffle_seed!r}")
        order = np.random.default_rng(shuffle_seed).permutation(len(images))
        images = [images[i] for i in order]
    builder = IndexBuilder()
    skipped: list[tuple[str, str]] = []
    written = 0
    with staged_output(out, overwrite=overwrite) as tmp:
        writers: dict[str, ShardWriter] = {}
        with progress_bar("packing images", len(images), enabled=progress) as advance:
            try:
                for image, data, ext in bounded_map(
                    _load, images, threads=READ_THREADS, ahead=READ_AHEAD
                ):
                    advance(1)
                    if data is None:
                        if on_error == "fail":
                            raise FormatError(
                                f"{ext} (pass on_error='skip' / --on-error skip to leave it out)"
                            )
                        skipped.append((str(image.path), ext))
                        continue
                    if image.split not in writers:
                        writers[image.split] = ShardWriter(
                            tmp, builder, split=image.split, shard_size=size_limit
                        )
                    members = [(ext, data), ("cls", str(image.label).encode("ascii"))]
                    writers[image.split].add(image.key, members, label=image.label)
            finally:
                for writer in writers.values():
                    writer.close()
                    written += writer.bytes_written
        if not len(builder):
            raise FormatError(f"no readable images in {src}: all {len(skipped)} files were skipped")
        write_index(tmp, builder.metadata("images", classes=classes), builder.arrays())
    return PackReport(
        samples=len(builder),
        bytes=written,
        shards=len(builder.shards),
        skipped=skipped,
        seconds=time.perf_counter() - started,
        path=out,
    )
