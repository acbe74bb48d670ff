"""The training loop every placement runs: same seed, same steps, only the data URL differs.

    result = train_placement(config, Placement("remote", url, ckpt_url), world=TrainRanks())
    results = train_lockstep(config, [local, near, remote], world=TrainRanks())

A `Lane` is one placement's job: model, optimizer, loader, checkpoints, and its own
clock. Per step it records the time spent waiting for the next batch (the data stall)
and the time computing; the first ``warmup_steps`` are trained but left out of the
timed window. `train_placement` runs one lane to the end. `train_lockstep` runs several
in one process, one step each in turn (rotating who goes first): every lane's loader
streams in the background at its own pace, the compute of all lanes shares one thread,
so a neighbour's load on a shared machine hits every placement alike. Each lane's clock
counts only its own steps (wait + compute + checkpoint hand-off).
Checkpoints (model, optimizer, every rank's loader position, config) go to the storage
site through `farfeed.checkpoint`, and ``resume=True`` continues from the latest one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from farfeed.bench.train import ranks
from farfeed.bench.train.config import TrainConfig
from farfeed.bench.train.data import epochs, make_workload, open_loader, read_facts, split_keys
from farfeed.bench.train.ranks import TrainRanks
from farfeed.bench.train.result import RunResult, StepRecord
from farfeed.bench.train.state import checkpoint_state, evaluate, live_state, merge_ranks, restore
from farfeed.errors import ConfigError

#: Called after every step with (step, steps, loss) for progress bars.
OnStep = Callable[[int, int, float], None]


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


class Lane:
    """One placement's training job, stepped from outside (see module docstring)."""

    def __init__(
        self,
        config: TrainConfig,
        placement: Placement,
        *,
        world: TrainRanks,
        resume: bool = False,
        store_options: Mapping[str, Any] | None = None,
    ) -> None:
        from farfeed.bench.train.checkpoints import CheckpointWriter, load_latest

        self.placement, self.world = placement, world
        self.device = device = ranks.device_for(world, config.device)
        torch.set_num_threads(config.threads)
        if device.type == "cuda":  # the GPU recipe's usual settings
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
        self.access = access = dict(store_options or {})
        facts = read_facts(placement.data_url, store_options=access)
        if config.lora_base is not None:
            config = config.replace(lora_base=placement.resolve(config.lora_base))
        self.config = config
        self.workload = workload = make_workload(config, facts, store_options=access)
        seed_everything(config.seed)
        self.model = workload.build_model(device)
        self.optimizer = workload.build_optimizer(self.model)
        self.scheduler = workload.build_scheduler(self.optimizer, steps=config.steps)
        self.trained = _wrap_ddp(self.model, world, device)
        self.loader = open_loader(placement.data_url, config, workload, world, store_options=access)
        self.start = 0
        if resume and placement.checkpoint_url:
            state = load_latest(placement.checkpoint_url, store_options=access)
            if state is not None:
                self.start = restore(
                    state, self.model, self.optimizer, self.scheduler, self.loader, world
                )
        if self.start >= config.steps:
            raise ConfigError(
                f"the latest checkpoint is at step {self.start}, not before steps={config.steps!r}"
            )
        self.writer = None
        if placement.checkpoint_url:
            self.writer = CheckpointWriter(
                placement.checkpoint_url, config=config, keep=config.checkpoint_keep,
                enabled=world.is_main, store_options=access,
            )  # fmt: skip
        self.model.train()
        self.batches = epochs(self.loader)
        self.rng = torch.random.get_rng_state()  # this lane's own random stream
        self.clock = 0.0
        self.records: list[StepRecord] = []
        self.keys: list[str] = []

    @property
    def steps(self) -> range:
        """The step indices this lane still has to train."""
        return range(self.start + len(self.records), self.config.steps)

    def step(self) -> StepRecord:
        """Train one step; its times are added to this lane's clock."""
        index = self.steps[0]
        torch.random.set_rng_state(self.rng)
        asked = time.perf_counter()
        raw, keys = split_keys(next(self.batches))
        got = time.perf_counter()
        batch = self.workload.prepare_batch(raw, self.device)
        loss = self.workload.loss(self.trained, batch, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        value = float(loss.detach())  # waits for the device: the step is really done
        done = time.perf_counter()
        every = self.config.checkpoint_every
        if (
            self.writer is not None
            and every
            and (index + 1) % every == 0
            and index + 1 < self.config.steps
        ):
            local = live_state(self.model, self.optimizer, self.scheduler, self.loader)
            self.writer.save(checkpoint_state(local, self.world, index + 1), step=index + 1)
        self.clock += time.perf_counter() - asked
        self.rng = torch.random.get_rng_state()
        samples = self.workload.batch_size_of(batch)
        record = StepRecord(index, self.clock, got - asked, done - got, samples, value)
        self.records.append(record)
        self.keys.extend(keys)
        return record

    def finish(self) -> RunResult:
        """Stop the loader, save the final checkpoint, score the held-out split."""
        self.batches.close()  # shuts the DataLoader workers down
        saved = time.perf_counter()
        if self.writer is not None:
            local = live_state(self.model, self.optimizer, self.scheduler, self.loader)
            self.writer.save(
                checkpoint_state(local, self.world, self.config.steps), step=self.config.steps
            )
            self.writer.wait()
        checkpoint_seconds = time.perf_counter() - saved
        world = self.world
        metric = evaluate(
            self.placement.data_url,
            self.config,
            self.workload,
            self.model,
            world,
            self.device,
            self.access,
        )
        extra: dict[str, Any] = {"workload": self.workload.describe()}
        if self.config.record_keys:
            extra["keys"] = ranks.gather(world, self.keys)
        base_seconds = getattr(self.workload, "base_load_seconds", None)
        if base_seconds is not None:
            extra["base_load_seconds"] = base_seconds
        return RunResult(
            placement=self.placement.name,
            steps=merge_ranks(self.records, world),
            warmup_steps=self.config.warmup_steps,
            world_size=world.world_size,
            metric_name=metric.name,
            final_metric=metric.value,
            chance=metric.chance,
            startup_seconds=self.records[0].wait if self.records else 0.0,
            checkpoint_seconds=checkpoint_seconds,
            resumed_from=self.start or None,
            extra=extra,
        )


def train_placement(
    config: TrainConfig,
    placement: Placement,
    *,
    world: TrainRanks,
    resume: bool = False,
    on_step: OnStep | None = None,
    store_options: Mapping[str, Any] | None = None,
) -> RunResult:
    """Train ``config`` on ``placement``'s data to the end and measure it.

    ``store_options`` reach every store this run opens (e.g. ``{"token": ...}`` for a
    gateway started with ``--tokens``).
    """
    lane = Lane(config, placement, world=world, resume=resume, store_options=store_options)
    for _ in lane.steps:
        record = lane.step()
        if on_step is not None:
            on_step(record.step + 1, config.steps, record.loss)
    return lane.finish()


def train_lockstep(
    config: TrainConfig,
    placements: Sequence[Placement],
    *,
    world: TrainRanks,
    on_step: Callable[[int, int, int, float], None] | None = None,
    store_options: Mapping[str, Any] | None = None,
) -> list[RunResult]:
    """Train one lane per placement, a step of each in turn; results in placement order.

    ``on_step`` gets (lane index, step, steps, loss). One rank only: DDP lanes would
    interleave their collectives.
    """
    if world.distributed:
        raise ConfigError("lockstep placements run on one rank; use the sequential schedule")
    lanes = [Lane(config, p, world=world, store_options=store_options) for p in placements]
    for step in range(config.steps):
        turn = step % len(lanes)
        for i in [*range(turn, len(lanes)), *range(turn)]:  # rotate who goes first
            record = lanes[i].step()
            if on_step is not None:
                on_step(i, step + 1, config.steps, record.loss)
    return [lane.finish() for lane in lanes]


def _wrap_ddp(model: torch.nn.Module, world: TrainRanks, device: torch.device) -> torch.nn.Module:
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ranks.init(world, device)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)
