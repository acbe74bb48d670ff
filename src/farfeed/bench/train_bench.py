"""`farfeed bench train`: the same job in three placements, interleaved, summarised like the PoC.

    result = run_bench(BenchSpec(config=TrainConfig(workload="resnet"), dataset=Path("root/images"),
                                 link_name="tokyo-fukuoka", link=Link.from_preset("tokyo-fukuoka")))
    result["overhead"]    # remote / near - 1: the cost of the distance

Two schedules. **lockstep** (the default for one CPU rank): the placements of a round
train in one process, one step of each in turn, each with its own model and its own
loader streaming in the background at its own pace; a neighbour's CPU load on a shared
machine then hits all of them alike and cancels in the ratios. **sequential** (GPUs,
torchrun): the placements run one after another, rotating the order each round (local
near remote, near remote local, ...) so drift does not favour one. Each figure is the median over rounds; the overhead is the
median of the per-round paired ratios.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farfeed.bench.train_config import TrainConfig
from farfeed.bench.train_launch import OnProgress, launch
from farfeed.bench.train_loop import Placement
from farfeed.bench.train_result import RunResult
from farfeed.bench.train_sites import LOCAL, Sites, open_sites
from farfeed.bench.train_summary import NEAR, REMOTE, summarize
from farfeed.bench.train_worker import Plan
from farfeed.errors import ConfigError

SCHEDULES = ("auto", "sequential", "lockstep")


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
    #: "sequential" (rounds of local, near, remote one after another), "lockstep" (the
    #: placements of a round step by step in turn in one process: a neighbour's load hits
    #: all alike), or "auto": lockstep for one CPU rank, sequential otherwise.
    schedule: str = "auto"

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {self.rounds!r}")
        if self.nproc < 1:
            raise ConfigError(f"nproc must be >= 1, got {self.nproc!r}")
        if not (Path(self.dataset) / "dataset.json").is_file():
            raise ConfigError(f"{str(self.dataset)!r} is not a packed dataset (no dataset.json)")
        if any(r < 0 for r in self.sweep_rtts):
            raise ConfigError(f"RTTs must be >= 0 seconds, got {self.sweep_rtts!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.schedule == "lockstep" and self.nproc > 1:
            raise ConfigError(f"the lockstep schedule runs one rank, got nproc={self.nproc!r}")
        if self.remote_url is not None and ("://" not in self.remote_url or self.sweep_rtts):
            raise ConfigError(
                f"remote_url must be a URL and excludes RTT sweeps, got {self.remote_url!r} "
                f"with sweep {self.sweep_rtts!r}"
            )

    @property
    def resolved_schedule(self) -> str:
        """The schedule "auto" stands for here."""
        if self.schedule != "auto":
            return self.schedule
        return "lockstep" if self.nproc == 1 and self.config.device == "cpu" else "sequential"

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
        schedule = spec.resolved_schedule
        status(
            f"training {spec.config.workload}: {spec.rounds} rounds x {len(names)} placements, "
            f"{schedule}"
        )
        by_name = _run_worker(spec, runs, names, on_progress)
    out = summarize(spec, by_name)
    out["load_average"] = [load_before, os.getloadavg()[0]]  # 1-min, before and after
    return out


def _run_worker(
    spec: BenchSpec,
    runs: list[tuple[int, Placement]],
    names: list[str],
    on_progress: OnProgress | None,
) -> dict[str, list[RunResult]]:
    """One worker (or torchrun) runs every (round, placement): in turn, or a round in lockstep."""
    lockstep = len(names) if spec.resolved_schedule == "lockstep" else 0
    plan = Plan(
        config=spec.config,
        runs=tuple(p for _, p in runs),
        out=spec.workdir / "runs.json",
        lockstep=lockstep,
    )
    results = launch(plan, workdir=spec.workdir, nproc=spec.nproc, on_progress=on_progress)
    if len(results) != len(runs):
        raise ConfigError(f"the worker returned {len(results)} results for {len(runs)} runs")
    by_name: dict[str, list[RunResult]] = {n: [] for n in names}
    for (_, placement), result in zip(runs, results, strict=True):
        by_name[placement.name].append(result)
    return by_name


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
