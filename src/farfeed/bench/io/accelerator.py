"""An emulated accelerator, as MLPerf Storage / DLIO do: each batch "computes" for a fixed time.

AU (accelerator utilisation) = compute time / wall time, measured after a warm-up.
A loader that keeps up gives AU near 1; every data stall lowers it.

    >>> profile = PROFILES["resnet50"].scaled(0.1)   # 40 samples x 114,660 B per 0.224 s
    >>> result = emulate(iter(loader), profile=profile, batches=40, warmup=5, t0=t0)
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from farfeed.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Profile:
    """A workload's shape: bytes per sample, samples per batch, compute seconds per batch."""

    name: str
    sample_bytes: int
    batch_size: int
    compute_s: float

    def __post_init__(self) -> None:
        if self.sample_bytes < 1 or self.batch_size < 1 or self.compute_s < 0:
            raise ConfigError(
                f"bad profile {self!r}: need sample_bytes >= 1, batch_size >= 1, compute_s >= 0"
            )

    @property
    def demand(self) -> float:
        """Bytes per second the accelerator consumes while it never waits."""
        return (
            self.sample_bytes * self.batch_size / self.compute_s if self.compute_s else float("inf")
        )

    def scaled(self, scale: float) -> Profile:
        """Shrink demand by ``scale`` (fewer samples per batch, same compute time and sample size)."""
        if not 0 < scale <= 1:
            raise ConfigError(f"scale must be in (0, 1], got {scale!r}")
        return Profile(
            self.name, self.sample_bytes, max(1, round(self.batch_size * scale)), self.compute_s
        )


#: MLPerf Storage v1.0 ResNet-50: 114,660-byte samples, batch 400, 0.224 s per batch per H100.
PROFILES = {"resnet50": Profile("resnet50", 114_660, 400, 0.224)}


@dataclass(frozen=True, slots=True)
class AcceleratorResult:
    """One run of the emulated accelerator."""

    batches: int  # batches consumed (warm-up included)
    samples: int  # samples in the measured batches
    compute_s: float  # emulated compute in the measured batches
    wall_s: float  # wall time of the measured batches
    stall_s: float  # time spent waiting for the loader in the measured batches
    first_batch_s: float  # t0 -> first batch in hand
    au: float  # compute_s / wall_s
    samples_per_s: float  # delivery rate: samples received after the first measured batch,
    # over the time from its arrival to the last one's (no batch counted before its interval)
    warmup_batches: int = 0  # batches consumed before the measurement began
    #: ~95 % band of ``au`` from the spread of the measured intervals between batches, in
    #: blocks of ``block`` (2 x their standard error, relative); NaN under 2 blocks
    au_noise: float = float("nan")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def emulate(
    batches: Iterator[Any],
    *,
    profile: Profile,
    count: int,
    warmup: int,
    t0: float,
    size_of: Callable[[Any], int] | None = None,
    max_seconds: float | None = None,
    min_measured: int = 5,
    warmup_s: float = 0.0,
    block: int = 1,
) -> AcceleratorResult:
    """Consume ``count`` batches, computing ``profile.compute_s`` on each (a sleep: the
    accelerator works while the CPU is free); AU over the batches after the warm-up: at
    least ``warmup`` batches and ``warmup_s`` seconds from the first batch (a slow loader
    then warms up in a few batches, a fast one in many). ``max_seconds`` ends the
    measurement early (after ``min_measured`` batches) for loaders too slow to finish in
    reasonable time. ``block``: batches that arrive together (a map-style DataLoader's
    workers each make whole batches, in turn), summed before their spread is taken."""
    if count <= warmup or warmup < 0 or warmup_s < 0:
        raise ConfigError(
            f"need count > warmup >= 0 and warmup_s >= 0, got count={count!r} "
            f"warmup={warmup!r} warmup_s={warmup_s!r}"
        )
    first_batch = first_got = 0.0
    start = 0.0
    stall = compute = 0.0
    samples = 0
    first_size = 0
    last_got = 0.0
    done = 0
    measured_from: int | None = None  # index of the first measured batch
    intervals: list[float] = []  # between measured batches in hand
    deadline = time.monotonic()
    for k in range(count):
        before = time.monotonic()
        try:
            batch = next(batches)
        except StopIteration:
            break
        got = time.monotonic()
        if k == 0:
            first_batch, first_got = got - t0, got
        if measured_from is None and k >= warmup and got - first_got >= warmup_s:
            measured_from, start = k, got
        elif measured_from is not None:
            stall += got - before
            intervals.append(got - last_got)
        if measured_from is not None:
            size = size_of(batch) if size_of else profile.batch_size
            first_size = size if k == measured_from else first_size
            samples += size
            compute += profile.compute_s
            last_got = got
        deadline = got + profile.compute_s
        time.sleep(max(0.0, deadline - time.monotonic()))
        done += 1
        measured = done - measured_from if measured_from is not None else 0
        if max_seconds is not None and measured >= min_measured and deadline - start > max_seconds:
            break
    if measured_from is None:
        raise ConfigError(
            f"the loader ran out after {done} batches, still in the warm-up "
            f"(warmup={warmup} batches, warmup_s={warmup_s} s)"
        )
    wall = max(1e-9, deadline - start)
    au = min(1.0, compute / wall)
    rate = (samples - first_size) / (last_got - start) if last_got > start else 0.0
    return AcceleratorResult(
        done, samples, compute, wall, stall, first_batch, au, rate,
        warmup_batches=measured_from, au_noise=_band(intervals, block) * au,
    )  # fmt: skip


def _band(intervals: list[float], block: int) -> float:
    """2 x the standard error of the mean time per block of ``block`` intervals, over that
    mean (NaN under 2 blocks)."""
    size = max(1, block)
    blocks = [sum(intervals[i : i + size]) for i in range(0, len(intervals) - size + 1, size)]
    if len(blocks) < 2:
        return float("nan")
    mean = statistics.fmean(blocks)
    return 2 * statistics.stdev(blocks) / math.sqrt(len(blocks)) / mean if mean else 0.0
