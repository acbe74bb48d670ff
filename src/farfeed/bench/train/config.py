"""The settings of one training benchmark, as a small typed value object.

One `TrainConfig` describes the job; the same object (as JSON) travels to every rank of
every placement, so local, near and remote train the same model, seed and steps. It is
also saved inside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from farfeed.errors import ConfigError

DEVICES = ("cpu", "cuda")

#: Per-workload defaults: the CPU demo's tiny scale. The GPU recipe overrides them.
DEFAULTS: dict[str, dict[str, Any]] = {
    "resnet": {"batch_size": 16, "lr": 0.05, "num_workers": 1},
    "llm": {"batch_size": 16, "lr": 3e-3, "num_workers": 1},
}


@dataclass(frozen=True)
class TrainConfig:
    """One training job, e.g. ``TrainConfig(workload="resnet", steps=40, image_size=64)``.

    ``batch_size`` is per rank. ``warmup_steps`` are trained but not timed (connection
    set-up and the first prefetch fill; reported apart as ``startup_seconds``).
    """

    workload: str = "resnet"
    steps: int = 40
    warmup_steps: int = 3
    batch_size: int | None = None
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    num_workers: int | None = None
    lr: float | None = None
    amp: bool = True
    channels_last: bool = True
    arch: str = "resnet18"
    image_size: int = 64
    model_size: str = "tiny"
    seq_len: int = 128
    lora_base: str | None = None
    lora_rank: int = 8
    eval_batches: int = 4
    checkpoint_every: int = 0
    checkpoint_keep: int = 2
    memory_budget: int | None = None
    record_keys: bool = False

    def __post_init__(self) -> None:
        if self.workload not in DEFAULTS:
            raise ConfigError(f"workload must be one of {tuple(DEFAULTS)}, got {self.workload!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {DEVICES}, got {self.device!r}")
        for name in ("steps", "threads", "eval_batches", "checkpoint_keep"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("warmup_steps", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.warmup_steps >= self.steps:
            raise ConfigError(
                f"warmup_steps must be < steps, got warmup_steps={self.warmup_steps!r} "
                f"steps={self.steps!r}"
            )
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {self.num_workers!r}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")
        if self.lora_base is not None and self.workload != "llm":
            raise ConfigError(f"lora_base applies to the llm workload, not {self.workload!r}")

    @property
    def per_rank_batch(self) -> int:
        """Batch size per rank, the workload's default when not given."""
        return int(self.batch_size or DEFAULTS[self.workload]["batch_size"])

    @property
    def learning_rate(self) -> float:
        """Learning rate, the workload's default when not given."""
        return float(self.lr or DEFAULTS[self.workload]["lr"])

    @property
    def workers(self) -> int:
        """DataLoader worker processes per rank, the workload's default when not given."""
        if self.num_workers is not None:
            return self.num_workers
        return int(DEFAULTS[self.workload]["num_workers"])

    @property
    def timed_steps(self) -> int:
        """Steps inside the timed window."""
        return self.steps - self.warmup_steps

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from `to_dict` output; unknown keys are rejected, not ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown train config keys: {unknown!r}")
        return cls(**data)

    def to_json(self) -> str:
        """JSON text of `to_dict`."""
        return json.dumps(self.to_dict(), sort_keys=True)
