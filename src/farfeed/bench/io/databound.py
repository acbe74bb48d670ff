"""The demo's data-bound job: the PoC's ResNet-50 data demand, scaled to this machine, across
one emulated link, fed by the loader most users run today and by farfeed.

    rows = run_data_bound(DataBoundSpec(), root=Path("demo-out/storage"), gateway=gateway)
    rows[0]   # {"loader": "baseline", "rtt_ms": 0.0, "au": 0.97, "au_relative": 1.0, ...}

The accelerator is emulated as MLPerf Storage does (`accelerator.emulate`): per batch it
"computes" for a fixed time. Its profile is MLPerf Storage's ResNet-50 on one H100 (batch
400 per 0.224 s, 1,785 samples/s) x ``scale`` (0.05: 20 samples per 0.224 s = 89/s, whose
decode takes ~0.4 of this machine's 2 cores, so a neighbour's load does not decide the
result). It consumes ``demand`` (0.9) of the link: the emulated bandwidth is the
accelerator's byte rate / 0.9, so the link, not the CPU, is what a loader has to keep
busy. The RTT is real (0, 15 and 100 ms by default). What is scaled is the demand per
DataLoader worker: 89 samples/s over 2 workers is ~45/s each, where the PoC's node asks
~220/s of each of 8 workers per GPU; a loader that pays one RTT per sample has it 5x
easier here than there.

Samples are real JPEGs (`images.ensure_bound_images`, ~107 KB), decoded and cropped as
training decodes them (RandomResizedCrop to ``image_size``, flip, normalise) in the
DataLoader workers. Two loaders, the same number of workers, the same link, in turn:

- ``baseline``: a map-style Dataset that GETs one whole JPEG file per sample from the
  gateway (an ImageFolder over HTTP) with a plain torch DataLoader (shuffle, workers);
- ``farfeed``: ``farfeed.Dataset(decode="image")`` over the packed shards of the same
  JPEGs, with `farfeed.loader.DataLoader`.

AU = compute time / wall time over the measured batches; ``au_relative`` = AU / the same
loader's AU at 0 ms (what the distance alone took away). ``au_noise`` is a trial's ~95 %
band (`accelerator.emulate`), ``au_relative_noise`` the band of the ratio (both trials').
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from farfeed.bench.io.accelerator import PROFILES, Profile
from farfeed.bench.io.harness import TrialRunner, run_behind_link
from farfeed.bench.io.images import FILES, LIST, SHARDS, ensure_bound_images, mean_sample_bytes
from farfeed.bench.io.trial import TrialSpec
from farfeed.errors import ConfigError

LOADERS = ("baseline", "farfeed")


@dataclass(frozen=True)
class DataBoundSpec:
    """The data-bound job's settings (saved beside its figures in results.json)."""

    rtts_ms: tuple[float, ...] = (0.0, 15.0, 100.0)
    scale: float = 0.05  # of one H100's MLPerf Storage ResNet-50 demand
    demand: float = 0.9  # accelerator demand / link bandwidth
    workers: int = 2  # DataLoader workers, both loaders
    image_size: int = 64  # the training crop (the demo's ResNet trains at 64 px)
    seconds: float = 10.0  # measured per trial (at least 5 batches for a slow loader)
    warmup_s: float = 2.0  # from the first batch, before AU is measured (connections,
    warmup: int = 2  # read-ahead ramp); and at least this many batches
    window: int = 4 * 2**20  # emulated TCP window per connection
    memory_budget: int = 256 * 2**20  # farfeed's, per rank
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.rtts_ms or 0.0 not in self.rtts_ms or any(r < 0 for r in self.rtts_ms):
            raise ConfigError(
                f"data-bound RTTs must be >= 0 ms and include 0 (the reference), got {self.rtts_ms!r}"
            )
        if not 0 < self.demand <= 1:
            raise ConfigError(f"demand must be in (0, 1], got {self.demand!r}")
        if self.workers < 1 or self.warmup < 1 or self.seconds <= 0 or self.warmup_s < 0:
            raise ConfigError(
                f"need workers >= 1, warmup >= 1, seconds > 0 and warmup_s >= 0, got "
                f"{self.workers!r}, {self.warmup!r}, {self.seconds!r}, {self.warmup_s!r}"
            )

    @property
    def profile(self) -> Profile:
        """The emulated accelerator: MLPerf Storage's ResNet-50 x ``scale``."""
        return PROFILES["resnet50"].scaled(self.scale)

    @property
    def batches(self) -> int:
        """Batches per trial at most, warm-up included (a loader that keeps up)."""
        return self.warmup + math.ceil((self.warmup_s + self.seconds) / self.profile.compute_s)

    @property
    def images(self) -> int:
        """Images one trial consumes at most: one epoch, never a second."""
        return math.ceil(self.batches * self.profile.batch_size * 1.05)

    def plan(self) -> list[float]:
        """The RTTs in the order they run: each once, then 0 ms again (the reference is
        measured first and last, so its spread shows the machine's drift)."""
        return [*self.rtts_ms, 0.0]

    def link_bandwidth(self, sample_bytes: float) -> float:
        """Bytes/s of the emulated link for samples of ``sample_bytes``: demand / ``demand``."""
        profile = self.profile
        return sample_bytes * profile.batch_size / profile.compute_s / self.demand

    def trial(self, loader: str, base: str, *, sample_bytes: float) -> TrialSpec:
        """The trial of ``loader`` against the gateway at ``base`` (a URL through the link)."""
        profile = self.profile
        return TrialSpec(
            loader=loader,
            url=f"{base}/{SHARDS}",
            sample_bytes=round(sample_bytes),
            batch_size=profile.batch_size,
            compute_s=profile.compute_s,
            batches=self.batches,
            warmup=self.warmup,
            warmup_s=self.warmup_s,
            workers=self.workers,
            memory_budget=self.memory_budget,
            seed=self.seed,
            max_seconds=self.seconds,
            decode="image",
            image_size=self.image_size,
            files=f"{base}/{FILES}/{LIST}",
        )


def setup(spec: DataBoundSpec, root: Path) -> dict[str, Any]:
    """Make the data (`ensure_bound_images`) and describe the job: what results.json keeps
    under ``data_bound_setup``."""
    files, _ = ensure_bound_images(root, count=spec.images)
    sample_bytes = mean_sample_bytes(files)
    profile = spec.profile
    return {
        **asdict(spec),
        "batch_size": profile.batch_size,
        "compute_s": profile.compute_s,
        "sample_bytes": sample_bytes,
        "demand_mb_s": sample_bytes * profile.batch_size / profile.compute_s / 1e6,
        "link_mb_s": spec.link_bandwidth(sample_bytes) / 1e6,
    }


def run_data_bound(
    spec: DataBoundSpec,
    *,
    root: Path,
    gateway: Any,
    base_link: Any = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run both loaders at every RTT against ``gateway`` (serving ``root``) through a fresh
    `farfeed wan` each, baseline then farfeed, RTT by RTT, and 0 ms again at the end (the
    reference, bracketing the rest); (one row per loader and RTT, the setup).
    ``base_link``: the link whose other settings (jitter, loss) the trials keep."""
    from farfeed.wan import Link

    info = setup(spec, root)
    bandwidth = spec.link_bandwidth(info["sample_bytes"])
    base = base_link if base_link is not None else Link()
    trials: list[dict[str, Any]] = []
    with TrialRunner() as runner:
        for rtt in spec.plan():
            link = base.with_(rtt=rtt / 1000, bandwidth=bandwidth, window=spec.window)
            for loader in LOADERS:
                make = functools.partial(spec.trial, loader, sample_bytes=info["sample_bytes"])
                result, cpu = run_behind_link(
                    gateway, link, make, timeout=spec.seconds * 6 + 120, runner=runner
                )
                trials.append(_row(loader, rtt, result, cpu, bandwidth))
                if on_trial is not None:
                    on_trial(trials[-1])
    return summarise(trials), info


def summarise(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (loader, RTT), trials averaged (``au_runs`` keeps each AU), with AU
    relative to the same loader at 0 ms and its noise band: the two reference trials'
    spread, or the trials' own bands (`accelerator.emulate`), whichever is larger, the
    RTT's and the reference's added in quadrature."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for trial in trials:
        groups.setdefault((trial["loader"], trial["rtt_ms"]), []).append(trial)
    rows: list[dict[str, Any]] = []
    for (loader, rtt), group in groups.items():
        row: dict[str, Any] = {
            k: statistics.fmean(t[k] for t in group) if isinstance(v, float) else v
            for k, v in group[0].items()
        }
        row.update(loader=loader, rtt_ms=rtt, trials=len(group), au_runs=[t["au"] for t in group])
        rows.append(row)
    for row in rows:
        ref = next(r for r in rows if r["loader"] == row["loader"] and r["rtt_ms"] == 0)
        runs = ref["au_runs"]
        ref_band = max(
            (max(runs) - min(runs)) / ref["au"] if len(runs) > 1 else 0.0,
            _relative(ref),
        )
        row["au_relative"] = row["au"] / ref["au"]
        row["au_relative_noise"] = ref_band if row is ref else math.hypot(_relative(row), ref_band)
    rows.sort(key=lambda r: (r["rtt_ms"], LOADERS.index(r["loader"])))
    return rows


def _relative(row: dict[str, Any]) -> float:
    """A row's own AU band relative to its AU (0 when unknown)."""
    band = row["au_noise"] / row["au"] if row["au"] else float("nan")
    return band if math.isfinite(band) else 0.0


def _row(
    loader: str, rtt: float, result: dict[str, Any], cpu: dict[str, float], bandwidth: float
) -> dict[str, Any]:
    return {
        "loader": loader,
        "rtt_ms": rtt,
        "au": result["au"],
        "au_noise": result["au_noise"],
        "samples_per_s": result["samples_per_s"],
        "mb_per_s": result["bytes_per_s"] / 1e6,
        "link_utilisation": result["bytes_per_s"] / bandwidth,
        "stall_s": result["stall_s"],
        "measured_s": result["wall_s"],
        "measured_batches": result["batches"] - result["warmup_batches"],
        "first_batch_s": result["first_batch_s"],
        "loader_cores": cpu["loader"],
        "gateway_cores": cpu["gateway"],
        "wan_cores": cpu["wan"],
    }
