"""`farfeed bench train`: the same job in three placements, interleaved, summarised like the PoC.

    spec = TrainBenchSpec(config=TrainConfig(workload="resnet"), dataset=Path("root/images"),
                          link_name="tokyo-fukuoka", link=Link.from_preset("tokyo-fukuoka"))
    result = run_train_bench(spec)
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
from pathlib import Path
from typing import Any

from farfeed.bench.train.launch import OnProgress, launch
from farfeed.bench.train.loop import Placement
from farfeed.bench.train.result import RunResult
from farfeed.bench.train.sites import REMOTE, Sites, open_sites
from farfeed.bench.train.spec import TrainBenchSpec
from farfeed.bench.train.summary import summarize
from farfeed.bench.train.worker import Plan
from farfeed.errors import ConfigError


def order(names: Sequence[str], rounds: int) -> list[tuple[int, str]]:
    """(round, placement) in run order, rotating the start each round."""
    runs: list[tuple[int, str]] = []
    for r in range(rounds):
        shift = r % len(names)
        runs.extend((r, n) for n in [*names[shift:], *names[:shift]])
    return runs


def run_train_bench(
    spec: TrainBenchSpec,
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
    names = spec.placements()
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
    spec: TrainBenchSpec,
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
    sites: Sites, dataset: str, names: list[str], spec: TrainBenchSpec, *, run: str
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
