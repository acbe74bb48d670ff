"""The training loop every placement runs: same seed, same steps, only the data URL differs.

    result = train_placement(config, Placement("remote", url, ckpt_url), world=World())

Per step it records the time spent waiting for the next batch (the data stall) and the
time computing; the first ``warmup_steps`` are trained but left out of the timed window.
Checkpoints (model, optimizer, every rank's loader position, config) go to the storage
site through `farfeed.checkpoint`, and ``resume=True`` continues from the latest one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import torch

from farfeed.bench import train_dist
from farfeed.bench.train_config import TrainConfig
from farfeed.bench.train_data import epochs, make_workload, open_loader, read_facts, split_keys
from farfeed.bench.train_dist import World
from farfeed.bench.train_result import RunResult, StepRecord
from farfeed.bench.workloads import Metric, Workload
from farfeed.errors import ConfigError

#: Called after every step with (step, steps, loss) for progress bars.
OnStep = Callable[[int, int, float], None]

PLACEMENTS = ("local", "near", "remote")


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one run's data (and checkpoints) live, e.g. ``Placement("local", "/data/ds")``."""

    name: str
    data_url: str
    checkpoint_url: str | None = None
    #: The storage root as seen from this placement (resolves a relative ``lora_base``).
    root_url: str | None = None

    def resolve(self, name: str) -> str:
        """``name`` as a URL from this placement: relative names are under ``root_url``."""
        if "://" in name or name.startswith("/") or self.root_url is None:
            return name
        return self.root_url.rstrip("/") + "/" + name

    def __post_init__(self) -> None:
        if not self.name or not self.data_url:
            raise ConfigError(f"a placement needs a name and a data URL, got {self!r}")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch so every placement starts from the same model."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train_placement(
    config: TrainConfig,
    placement: Placement,
    *,
    world: World,
    resume: bool = False,
    on_step: OnStep | None = None,
    store_options: Mapping[str, Any] | None = None,
) -> RunResult:
    """Train ``config`` on ``placement``'s data and measure it (see module docstring).

    ``store_options`` reach every store this run opens (e.g. ``{"token": ...}`` for a
    gateway started with ``--tokens``).
    """
    from farfeed.bench.train_ckpt import CheckpointWriter, load_latest

    device = train_dist.device_for(world, config.device)
    torch.set_num_threads(config.threads)
    if device.type == "cuda":  # the GPU recipe's usual settings
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    access = dict(store_options or {})
    facts = read_facts(placement.data_url, store_options=access)
    if config.lora_base is not None:
        config = config.replace(lora_base=placement.resolve(config.lora_base))
    workload = make_workload(config, facts, store_options=access)
    seed_everything(config.seed)
    model = workload.build_model(device)
    optimizer = workload.build_optimizer(model)
    scheduler = workload.build_scheduler(optimizer, steps=config.steps)
    trained = _wrap_ddp(model, world, device)
    loader = open_loader(placement.data_url, config, workload, world, store_options=access)
    start = 0
    if resume and placement.checkpoint_url:
        state = load_latest(placement.checkpoint_url, store_options=access)
        if state is not None:
            start = _restore(state, model, optimizer, scheduler, loader, world)
    if start >= config.steps:
        raise ConfigError(
            f"the latest checkpoint is at step {start}, not before steps={config.steps!r}"
        )
    writer = None
    if placement.checkpoint_url:
        writer = CheckpointWriter(
            placement.checkpoint_url,
            config=config,
            keep=config.checkpoint_keep,
            enabled=world.is_main,
            store_options=access,
        )
    records: list[StepRecord] = []
    keys: list[str] = []
    model.train()
    began = time.perf_counter()
    batches = epochs(loader)
    for step in range(start, config.steps):
        asked = time.perf_counter()
        raw, batch_keys = split_keys(next(batches))
        got = time.perf_counter()
        batch = workload.prepare_batch(raw, device)
        loss = workload.loss(trained, batch, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        value = float(loss.detach())  # waits for the device: the step is really done
        done = time.perf_counter()
        records.append(
            StepRecord(
                step, done - began, got - asked, done - got, workload.batch_size_of(batch), value
            )
        )
        keys.extend(batch_keys)
        if on_step is not None:
            on_step(step + 1, config.steps, value)
        every = config.checkpoint_every
        if writer is not None and every and (step + 1) % every == 0 and step + 1 < config.steps:
            writer.save(_state(model, optimizer, scheduler, loader, world, step + 1), step=step + 1)
    batches.close()  # shuts the DataLoader workers down
    saved = time.perf_counter()
    if writer is not None:
        writer.save(
            _state(model, optimizer, scheduler, loader, world, config.steps), step=config.steps
        )
        writer.wait()
    checkpoint_seconds = time.perf_counter() - saved
    metric = _evaluate(placement.data_url, config, workload, model, world, device, access)
    extra: dict[str, Any] = {"workload": workload.describe()}
    if config.record_keys:
        extra["keys"] = train_dist.gather(world, keys)
    if getattr(workload, "base_load_seconds", None) is not None:
        extra["base_load_seconds"] = workload.base_load_seconds  # type: ignore[attr-defined]
    return RunResult(
        placement=placement.name,
        steps=_merge_ranks(records, world),
        warmup_steps=config.warmup_steps,
        world_size=world.world_size,
        metric_name=metric.name,
        final_metric=metric.value,
        chance=metric.chance,
        startup_seconds=records[0].wait if records else 0.0,
        checkpoint_seconds=checkpoint_seconds,
        resumed_from=start or None,
        extra=extra,
    )


def _wrap_ddp(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    train_dist.init(world, device)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loader: Any,
    world: World,
    step: int,
) -> dict[str, Any]:
    """Everything a resume needs; every rank's loader position gathered (a collective)."""
    loaders = train_dist.gather(world, loader.state_dict())
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "loaders": loaders,
        "step": step,
    }


def _restore(
    state: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loader: Any,
    world: World,
) -> int:
    """Load a checkpoint's model, optimizer and this rank's loader position; returns its step."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    loaders = state["loaders"]
    if len(loaders) != world.world_size:
        raise ConfigError(
            f"checkpoint was saved by {len(loaders)} ranks, this job has {world.world_size}"
        )
    loader.load_state_dict(loaders[world.rank])
    return int(state["step"])


def _evaluate(
    url: str,
    config: TrainConfig,
    workload: Workload,
    model: torch.nn.Module,
    world: World,
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
    parts = train_dist.gather(world, (metric.value, metric.count))
    count = sum(c for _, c in parts)
    value = sum(v * c for v, c in parts if c) / count if count else float("nan")
    return Metric(metric.name, value, metric.higher_is_better, metric.chance, count)


def _merge_ranks(records: list[StepRecord], world: World) -> list[StepRecord]:
    """One record per step for the whole job: the slowest rank's times (what the job waits for)."""
    if not world.distributed:
        return records
    every = train_dist.gather(world, records)
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
