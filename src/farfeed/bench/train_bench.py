"""`farfeed bench train`: the same job in three placements, interleaved, summarised like the PoC.

    result = run_bench(BenchSpec(config=TrainConfig(workload="resnet"), dataset=Path("root/images"),
                                 link_name="tokyo-fukuoka", link=Link.from_preset("tokyo-fukuoka")))
    result["overhead"]    # remote / near - 1: the cost of the distance

Rounds rotate the placement order (local near remote, near remote local, ...) so a
noisy neighbour or a warming cache does not favour one placement; each figure is the
median over rounds, and the overhead is the median of the per-round paired ratios.
"""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farfeed.bench.train_config import TrainConfig
from farfeed.bench.train_launch import OnProgress, launch
from farfeed.bench.train_loop import Placement
from farfeed.bench.train_result import RunResult
from farfeed.bench.train_sites import LOCAL, Sites, open_sites
from farfeed.bench.train_worker import Plan
from farfeed.errors import ConfigError

NEAR = "near"
REMOTE = "remote"
#: Summary fields every placement carries in the JSON.
FIELDS = ("seconds", "samples_per_s", "stall_fraction", "final_metric")


def sweep_name(rtt: float) -> str:
    """Placement name of one extra RTT of a sweep, e.g. ``rtt-50ms``."""
    return f"rtt-{rtt * 1000:g}ms"


@dataclass(frozen=True)
class BenchSpec:
    """One `farfeed bench train` invocation (see module docstring).

    ``dataset`` is a packed dataset folder; its parent folder is served as the storage
    root. ``sweep_rtts`` (seconds) add remote placements for the overhead-vs-RTT plot.
    ``remote_url``: a real storage site's dataset URL (``https://storage:8470/imagenet``)
    to use as "remote" instead of the emulated link; ``dataset`` is then its local copy.
    """

    config: TrainConfig
    dataset: Path
    link_name: str
    link: Any
    sweep_rtts: tuple[float, ...] = ()
    rounds: int = 3
    nproc: int = 1
    checkpoints: bool = True
    workdir: Path = field(default_factory=lambda: Path("bench-out"))
    remote_url: str | None = None

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {self.rounds!r}")
        if self.nproc < 1:
            raise ConfigError(f"nproc must be >= 1, got {self.nproc!r}")
        if not (Path(self.dataset) / "dataset.json").is_file():
            raise ConfigError(f"{str(self.dataset)!r} is not a packed dataset (no dataset.json)")
        if any(r < 0 for r in self.sweep_rtts):
            raise ConfigError(f"RTTs must be >= 0 seconds, got {self.sweep_rtts!r}")
        if self.remote_url is not None and ("://" not in self.remote_url or self.sweep_rtts):
            raise ConfigError(
                f"remote_url must be a URL and excludes RTT sweeps, got {self.remote_url!r} "
                f"with sweep {self.sweep_rtts!r}"
            )

    def links(self) -> dict[str, Any]:
        """Emulated links by placement name: near (0 ms), remote, and each sweep RTT."""
        near = self.link.with_(rtt=0.0, jitter=0.0, loss=0.0)
        if self.remote_url is not None:
            return {NEAR: near}  # remote is the real link
        links = {NEAR: near, REMOTE: self.link}
        for rtt in self.sweep_rtts:
            links.setdefault(sweep_name(rtt), self.link.with_(rtt=rtt))
        return links


def order(names: Sequence[str], rounds: int) -> list[tuple[int, str]]:
    """(round, placement) in run order, rotating the start each round."""
    runs: list[tuple[int, str]] = []
    for r in range(rounds):
        shift = r % len(names)
        runs.extend((r, n) for n in [*names[shift:], *names[:shift]])
    return runs


def run_bench(
    spec: BenchSpec,
    *,
    on_progress: OnProgress | None = None,
    on_status: Callable[[str], None] | None = None,
    sites: Sites | None = None,
) -> dict[str, Any]:
    """Start the sites (or use running ``sites`` over the dataset's parent folder, with the
    spec's links), run every placement ``rounds`` times, and return the summary dict."""
    status = on_status or (lambda _msg: None)
    dataset = Path(spec.dataset).resolve()
    links = spec.links()
    names = [LOCAL, *links] + ([REMOTE] if spec.remote_url else [])
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        if sites is None:
            status(f"starting the gateway over {dataset.parent} and {len(links)} emulated links")
            sites = stack.enter_context(open_sites(dataset.parent, links=links))
        elif sites.root != dataset.parent or set(sites.wans) != set(links):
            raise ConfigError(
                f"the running sites serve {str(sites.root)!r} with links {sorted(sites.wans)}, "
                f"this bench needs {str(dataset.parent)!r} with {sorted(links)}"
            )
        runs = _plan_runs(sites, dataset.name, names, spec, run=f"bench-{spec.config.workload}")
        plan = Plan(
            config=spec.config, runs=tuple(p for _, p in runs), out=spec.workdir / "runs.json"
        )
        status(
            f"training {spec.config.workload}: {len(runs)} runs ({spec.rounds} rounds x {len(names)} placements)"
        )
        results = launch(plan, workdir=spec.workdir, nproc=spec.nproc, on_progress=on_progress)
    if len(results) != len(runs):
        raise ConfigError(f"the worker returned {len(results)} results for {len(runs)} runs")
    by_name: dict[str, list[RunResult]] = {n: [] for n in names}
    for (_, placement), result in zip(runs, results, strict=True):
        by_name[placement.name].append(result)
    out = summarize(spec, by_name)
    out["load_average"] = [load_before, os.getloadavg()[0]]  # 1-min, before and after
    return out


def _plan_runs(
    sites: Sites, dataset: str, names: list[str], spec: BenchSpec, *, run: str
) -> list[tuple[int, Placement]]:
    runs: list[tuple[int, Placement]] = []
    for r, name in order(names, spec.rounds):
        if name == REMOTE and spec.remote_url is not None:
            placement = real_remote(spec.remote_url, run=run if spec.checkpoints else None)
        else:
            placement = sites.placement(name, dataset, run=run if spec.checkpoints else None)
        runs.append((r, placement))
    return runs


def real_remote(url: str, *, run: str | None) -> Placement:
    """The "remote" placement on a real storage site: its dataset URL, checkpoints beside it."""
    root = url.rstrip("/").rsplit("/", 1)[0]
    ckpt = f"{root}/checkpoints/{run}-{REMOTE}" if run else None
    return Placement(REMOTE, url.rstrip("/"), ckpt, root_url=root)


def _median(results: list[RunResult], key: str) -> float:
    return statistics.median(float(r.summary()[key]) for r in results)


def placement_summary(results: list[RunResult]) -> dict[str, Any]:
    """Medians over rounds of one placement's figures, plus every round's raw summary."""
    out: dict[str, Any] = {
        k: _median(results, k)
        for k in (*FIELDS, "first_loss", "final_loss", "startup_seconds", "checkpoint_seconds")
    }
    first = results[0].summary()
    out.update(metric_name=first["metric_name"], chance=first["chance"], samples=first["samples"])
    out["rounds"] = [r.summary() for r in results]
    return out


def paired_overhead(slow: list[RunResult], base: list[RunResult]) -> float:
    """Median over rounds of slow/base - 1 (paired by round: neighbours in time)."""
    ratios = [s.seconds / b.seconds - 1 for s, b in zip(slow, base, strict=True) if b.seconds > 0]
    return statistics.median(ratios) if ratios else float("nan")


def identical_training(by_name: dict[str, list[RunResult]]) -> bool:
    """True when every run saw the same losses and metric: the same bytes arrived everywhere."""
    runs = [r for results in by_name.values() for r in results]
    first = runs[0]
    return all(
        [s.loss for s in r.steps] == [s.loss for s in first.steps]
        and r.final_metric == first.final_metric
        for r in runs[1:]
    )


def stall_overhead(slow: list[RunResult], base: list[RunResult]) -> float:
    """Median over rounds of (extra time waiting for data) / base time: the distance's cost
    seen only where it acts, so a neighbour's CPU load on the compute barely moves it."""
    ratios = [
        (s.stall_seconds - b.stall_seconds) / b.seconds
        for s, b in zip(slow, base, strict=True)
        if b.seconds > 0
    ]
    return statistics.median(ratios) if ratios else float("nan")


def spread(results: list[RunResult]) -> float:
    """max/min - 1 of one placement's times over rounds: the machine's noise in this bench."""
    times = [r.seconds for r in results if r.seconds > 0]
    return max(times) / min(times) - 1 if times else float("nan")


def summarize(spec: BenchSpec, by_name: dict[str, list[RunResult]]) -> dict[str, Any]:
    """The JSON of one bench: per placement figures, overheads, the sweep and the raw steps."""
    near, remote, local = by_name[NEAR], by_name[REMOTE], by_name[LOCAL]
    out: dict[str, Any] = {
        "workload": spec.config.workload,
        "link": spec.link_name,
        "rtt_ms": spec.link.rtt * 1000,
        "link_detail": (
            f"real link to {spec.remote_url}" if spec.remote_url else spec.link.describe()
        ),
        "rounds": spec.rounds,
        "nproc": spec.nproc,
        "config": spec.config.to_dict(),
        "batch_size": spec.config.per_rank_batch,
        "workload_detail": local[0].extra.get("workload", {}),
    }
    for name, results in by_name.items():
        out[name] = placement_summary(results)
    out["identical_training"] = identical_training(by_name)
    out["overhead"] = paired_overhead(remote, near)
    out["overhead_stall"] = stall_overhead(remote, near)
    out["noise"] = max(spread(results) for results in by_name.values())
    out["overhead_vs_local"] = paired_overhead(remote, local)
    out["near_vs_local"] = paired_overhead(near, local)
    out["sweep"] = [
        {"rtt_ms": 0.0, "placement": NEAR, "seconds": out[NEAR]["seconds"], "overhead": 0.0},
        *(
            {
                "rtt_ms": (spec.link if name == REMOTE else spec.links()[name]).rtt * 1000,
                "placement": name,
                "seconds": out[name]["seconds"],
                "overhead": paired_overhead(by_name[name], near),
            }
            for name in by_name
            if name not in (LOCAL, NEAR)
        ),
    ]
    out["sweep"].sort(key=lambda p: p["rtt_ms"])
    out["steps"] = {  # the median round of each placement, for the plots
        name: [[s.end, s.samples * r.world_size, s.loss, s.wait] for s in r.steps]
        for name, results in by_name.items()
        for r in [median_run(results)]
    }
    return out


def median_run(results: list[RunResult]) -> RunResult:
    """The round whose time is the median (the lower one of an even count)."""
    ranked = sorted(results, key=lambda r: r.seconds)
    return ranked[(len(ranked) - 1) // 2]


def link_for(preset: str, rtts_ms: Sequence[float]) -> tuple[str, Any, tuple[float, ...]]:
    """(link name, remote Link, extra sweep RTTs in s) from ``--link`` and ``--rtt-ms`` values.

    Without RTTs the preset is the remote link. With RTTs the first is the remote one
    (the preset's bandwidth and window, that RTT) and the rest are sweep points.
    """
    from farfeed.wan import Link

    link = Link.from_preset(preset)
    if not rtts_ms:
        return preset, link, ()
    bad = [r for r in rtts_ms if not r >= 0]
    if bad:
        raise ConfigError(f"--rtt-ms values must be >= 0 ms, got {bad!r}")
    first, *rest = rtts_ms
    return (
        f"rtt-{first:g}ms",
        link.with_(rtt=first / 1000),
        tuple(r / 1000 for r in rest if r != first),
    )
