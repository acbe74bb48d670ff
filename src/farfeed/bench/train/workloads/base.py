"""What every training workload provides: a model, an optimizer, a loss and a held-out metric.

The training loop (`farfeed.bench.train.loop`) knows nothing about images or tokens; a
workload turns one batch from `farfeed.Dataset` into a loss, and a few held-out batches
into one number (accuracy or loss) that shows whether the right data arrived.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

Batch = Any  # what farfeed.loader.DataLoader yields for this workload's decode mode


@dataclass(frozen=True, slots=True)
class Metric:
    """One held-out measurement, e.g. ``Metric("val_accuracy", 0.62, higher_is_better=True)``."""

    name: str
    value: float
    higher_is_better: bool
    #: What a model that learned nothing scores (1/classes, or ln(vocab)).
    chance: float
    #: How many held-out samples the value is over (to combine ranks).
    count: int = 0


class Workload(abc.ABC):
    """One training job: builds its model and optimizer, and scores batches."""

    #: Short name used on the command line and in reports ("resnet", "llm").
    name: str
    #: `farfeed.Dataset` decode mode this workload consumes ("image" or "tokens").
    decode: str

    @abc.abstractmethod
    def dataset_options(self, *, train: bool) -> dict[str, Any]:
        """Extra keyword arguments for `farfeed.Dataset` (image_size, seq_len, ...)."""

    @abc.abstractmethod
    def build_model(self, device: torch.device) -> torch.nn.Module:
        """A freshly initialised model on ``device`` (seeded by the caller)."""

    @abc.abstractmethod
    def build_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """The optimizer for ``model`` (SGD+momentum for images, AdamW for language)."""

    def build_scheduler(
        self, optimizer: torch.optim.Optimizer, *, steps: int
    ) -> torch.optim.lr_scheduler.LRScheduler:
        """Linear warm-up over the first 10 % of ``steps``, then cosine decay to 10 %.

        Short runs from scratch need both: warm-up keeps the first big gradients from
        blowing up BatchNorm or attention, the decay settles the last steps.
        """
        return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps))

    @abc.abstractmethod
    def loss(self, model: torch.nn.Module, batch: Batch, device: torch.device) -> torch.Tensor:
        """Mean training loss of one batch (forward only; the loop does backward)."""

    @abc.abstractmethod
    def batch_size_of(self, batch: Batch) -> int:
        """Number of samples in ``batch`` (the last one may be short)."""

    @abc.abstractmethod
    def evaluate(
        self, model: torch.nn.Module, batches: Iterable[Batch], device: torch.device
    ) -> Metric:
        """Score ``model`` on held-out batches: accuracy for images, mean loss for tokens."""

    def prepare_batch(self, batch: Batch, device: torch.device) -> Batch:
        """Move a batch to ``device`` (non-blocking from pinned memory on CUDA)."""
        if isinstance(batch, (list, tuple)):
            return type(batch)(
                t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t for t in batch
            )
        return batch

    def describe(self) -> dict[str, Any]:
        """The resolved settings, saved in reports and checkpoints."""
        return {"name": self.name, "decode": self.decode}


def warmup_cosine(steps: int, *, warmup: float = 0.1, floor: float = 0.1) -> Any:
    """The learning-rate factor per step: linear warm-up, then cosine down to ``floor``."""
    import math

    ramp = max(1, int(steps * warmup))

    def factor(step: int) -> float:
        if step < ramp:
            return (step + 1) / ramp
        progress = min(1.0, (step - ramp) / max(1, steps - ramp))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def autocast(device: torch.device, *, enabled: bool) -> Any:
    """bf16 autocast on CUDA (the GPU recipe); a no-op context on CPU or when disabled."""
    import contextlib

    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
