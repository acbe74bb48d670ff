"""The summary of one `farfeed bench train`: medians per placement and the costs of distance.

``overhead`` is remote/near - 1 on time-to-train, the median of the per-round paired
ratios (what the PoC's latency emulation measured); ``overhead_stall`` is the same cost
seen only where distance acts (extra time waiting for data); ``noise`` says how much one
placement's time moved between rounds, so a reader can tell what a ratio can resolve.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from farfeed.bench.train.result import RunResult
from farfeed.bench.train.sites import LOCAL, NEAR, REMOTE

if TYPE_CHECKING:
    from farfeed.bench.train.spec import TrainBenchSpec

#: Summary fields every placement carries in the JSON.
FIELDS = ("seconds", "samples_per_s", "stall_fraction", "final_metric")


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


def summarize(spec: TrainBenchSpec, by_name: dict[str, list[RunResult]]) -> dict[str, Any]:
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
        "schedule": spec.resolved_schedule,
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
        for r in [median_round(results)]
    }
    return out


def median_round(results: list[RunResult]) -> RunResult:
    """The round whose time is the median (the lower one of an even count)."""
    ranked = sorted(results, key=lambda r: r.seconds)
    return ranked[(len(ranked) - 1) // 2]
