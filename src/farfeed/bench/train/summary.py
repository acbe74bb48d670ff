"""The summary of one `farfeed bench train`: medians per placement and the costs of distance.

``overhead`` is remote/near - 1 on time-to-train, the median of the per-round paired
ratios (what the PoC's latency emulation measured); ``overhead_stall`` is the same cost
seen only where distance acts (extra time waiting for data); ``noise`` says how much one
placement's time moved between rounds. Each cost carries its own noise band
(``overhead_noise``, ``overhead_stall_noise``, ``overhead_vs_local_noise``, see
`noise_band`), so a report can say when a difference is smaller than what the run resolves.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
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
    ratios = _round_ratios(slow, base)
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
    ratios = _round_stalls(slow, base)
    return statistics.median(ratios) if ratios else float("nan")


def step_seconds(result: RunResult) -> list[float]:
    """Duration of each timed step on the run's clock (its wait for data + compute); they
    add up to `RunResult.seconds`."""
    steps, timed = result.steps, result.timed
    first = len(steps) - len(timed)  # the timed steps are the last ones
    return [
        steps[i].end - steps[i - 1].end if i > 0 else steps[i].wait + steps[i].compute
        for i in range(first, len(steps))
    ]


def step_waits(result: RunResult) -> list[float]:
    """Time waited for data at each timed step."""
    return [s.wait for s in result.timed]


def noise_band(
    slow: list[RunResult],
    base: list[RunResult],
    *,
    per_step: Callable[[RunResult], list[float]],
    per_round: list[float],
) -> float:
    """How far a cost (a fraction of ``base``'s time) can move by chance in this run: the
    larger of two estimates. (1) Step by step: the same step of ``slow`` and ``base`` does
    the same work on the same samples (same seed), so the differences of ``per_step``
    figures (step time, or wait for data) pooled over rounds, their standard error x 2
    (~95 %), over ``base``'s mean step time. (2) Round by round: half the range of the
    per-round costs ``per_round`` (needs 2 rounds or more). NaN without 2 paired steps.
    """
    diffs: list[float] = []
    base_steps: list[float] = []
    for s, b in zip(slow, base, strict=True):
        mine, theirs, times = per_step(s), per_step(b), step_seconds(b)
        n = min(len(mine), len(theirs), len(times))
        diffs += [x - y for x, y in zip(mine[:n], theirs[:n], strict=True)]
        base_steps += times[:n]
    mean_step = statistics.fmean(base_steps) if base_steps else 0.0
    if len(diffs) < 2 or mean_step <= 0:
        return float("nan")
    band = 2 * statistics.stdev(diffs) / math.sqrt(len(diffs)) / mean_step
    rounds = [r for r in per_round if math.isfinite(r)]
    if len(rounds) >= 2:
        band = max(band, (max(rounds) - min(rounds)) / 2)
    return band


def _round_ratios(slow: list[RunResult], base: list[RunResult]) -> list[float]:
    return [s.seconds / b.seconds - 1 for s, b in zip(slow, base, strict=True) if b.seconds > 0]


def _round_stalls(slow: list[RunResult], base: list[RunResult]) -> list[float]:
    return [
        (s.stall_seconds - b.stall_seconds) / b.seconds
        for s, b in zip(slow, base, strict=True)
        if b.seconds > 0
    ]


def stall_ms_per_step(slow: list[RunResult], base: list[RunResult]) -> float:
    """Median over rounds of ``slow``'s extra wait for data per timed step, milliseconds."""
    per_round = [
        (s.stall_seconds - b.stall_seconds) / len(b.timed) * 1000
        for s, b in zip(slow, base, strict=True)
        if b.timed
    ]
    return statistics.median(per_round) if per_round else float("nan")


def distance_costs(slow: list[RunResult], base: list[RunResult]) -> dict[str, float]:
    """What ``slow`` (remote) cost over ``base`` (near), paired by round and by step:
    ``overhead`` (wall time) and ``overhead_stall`` (extra wait for data), each with its
    ``_noise`` band (`noise_band`), and ``stall_ms_per_step``."""
    return {
        "overhead": paired_overhead(slow, base),
        "overhead_noise": noise_band(
            slow, base, per_step=step_seconds, per_round=_round_ratios(slow, base)
        ),
        "overhead_stall": stall_overhead(slow, base),
        "overhead_stall_noise": noise_band(
            slow, base, per_step=step_waits, per_round=_round_stalls(slow, base)
        ),
        "stall_ms_per_step": stall_ms_per_step(slow, base),
    }


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
    out["noise"] = max(spread(results) for results in by_name.values())
    out["overhead_vs_local"] = paired_overhead(remote, local)
    out.update(distance_costs(remote, near))
    out["overhead_vs_local_noise"] = distance_costs(remote, local)["overhead_noise"]
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
