"""What a training run saves, restores and reports besides its steps.

Checkpoint state (model, optimizer, schedule, every rank's loader position), the
held-out evaluation, and one record per step for a multi-rank job.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from typing import Any

import torch

from farfeed.bench.train import ranks
from farfeed.bench.train.config import TrainConfig
from farfeed.bench.train.data import open_loader
from farfeed.bench.train.ranks import TrainRanks
from farfeed.bench.train.result import StepRecord
from farfeed.bench.train.workloads import Metric, Workload
from farfeed.errors import ConfigError


def checkpoint_state(local: Mapping[str, Any], world: TrainRanks, step: int) -> dict[str, Any]:
    """A checkpoint from `live_state` output; every rank's loader position gathered (a collective)."""
    return {
        "model": local["model"],
        "optimizer": local["optimizer"],
        "scheduler": local["scheduler"],
        "loaders": ranks.gather(world, local["loader"]),
        "step": step,
    }


def live_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, loader: Any
) -> dict[str, Any]:
    """This rank's model, optimizer, schedule and loader position (not copied: save snapshots it)."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "loader": loader.state_dict(),
    }


def restore(
    state: Mapping[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loader: Any | None,
    world: TrainRanks,
) -> int:
    """Load a checkpoint's model, optimizer, schedule and this rank's loader position; its step."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if loader is not None:
        loaders = state["loaders"]
        if len(loaders) != world.world_size:
            raise ConfigError(
                f"checkpoint was saved by {len(loaders)} ranks, this job has {world.world_size}"
            )
        loader.load_state_dict(loaders[world.rank])
    return int(state.get("step", 0))


def evaluate(
    url: str,
    config: TrainConfig,
    workload: Workload,
    model: torch.nn.Module,
    world: TrainRanks,
    device: torch.device,
    store_options: Mapping[str, Any],
) -> Metric:
    """Held-out metric over ``eval_batches`` batches of the val split, all ranks combined."""
    loader = open_loader(
        url,
        config.replace(record_keys=False),
        workload,
        world,
        split="val",
        train=False,
        workers=0,
        store_options=store_options,
    )
    batches = iter(loader)
    metric = workload.evaluate(model, islice(batches, config.eval_batches), device)
    close = getattr(batches, "close", None)
    if close is not None:
        close()  # stops the fetch engine now, not at garbage collection
    parts = ranks.gather(world, (metric.value, metric.count))
    count = sum(c for _, c in parts)
    value = sum(v * c for v, c in parts if c) / count if count else float("nan")
    return Metric(metric.name, value, metric.higher_is_better, metric.chance, count)


def merge_ranks(records: list[StepRecord], world: TrainRanks) -> list[StepRecord]:
    """One record per step for the whole job: the slowest rank's times (what the job waits for)."""
    if not world.distributed:
        return records
    every = ranks.gather(world, records)
    merged = []
    for steps in zip(*every, strict=True):
        slow = max(steps, key=lambda s: s.end)
        merged.append(
            StepRecord(
                step=slow.step,
                end=slow.end,
                wait=max(s.wait for s in steps),
                compute=slow.compute,
                samples=steps[0].samples,
                loss=sum(s.loss for s in steps) / len(steps),
            )
        )
    return merged
