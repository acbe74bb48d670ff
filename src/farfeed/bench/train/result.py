"""What one training run measured, step by step, and its summary.

A `RunResult` is one placement (local, near or remote) of one job: per-step records
(time, wait for data, samples, loss) and the summary the report needs: time-to-train of
the timed steps, samples/s, data-stall fraction (time the loop waited for its next batch
divided by the timed wall time) and the held-out metric.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One optimizer step as the training loop saw it (times in seconds since the run began)."""

    step: int
    end: float
    wait: float
    compute: float
    samples: int
    loss: float


@dataclass
class RunResult:
    """One placement of one job: the raw steps plus the summary (see module docstring)."""

    placement: str
    steps: list[StepRecord]
    warmup_steps: int
    world_size: int
    metric_name: str
    final_metric: float
    chance: float
    startup_seconds: float
    checkpoint_seconds: float = 0.0
    resumed_from: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def timed(self) -> list[StepRecord]:
        """Steps inside the timed window (after warm-up)."""
        first = self.steps[0].step if self.steps else 0
        return [s for s in self.steps if s.step - first >= self.warmup_steps]

    @property
    def seconds(self) -> float:
        """Wall time of the timed steps: from the end of warm-up to the end of the last step."""
        timed = self.timed
        if not timed:
            return 0.0
        before = [s for s in self.steps if s.step < timed[0].step]
        start = before[-1].end if before else timed[0].end - timed[0].wait - timed[0].compute
        return timed[-1].end - start

    @property
    def samples(self) -> int:
        """Samples trained in the timed window, all ranks together."""
        return sum(s.samples for s in self.timed) * self.world_size

    @property
    def samples_per_s(self) -> float:
        """Training throughput over the timed window, all ranks together."""
        return self.samples / self.seconds if self.seconds > 0 else 0.0

    @property
    def stall_seconds(self) -> float:
        """Time the loop waited for its next batch inside the timed window."""
        return sum(s.wait for s in self.timed)

    @property
    def stall_fraction(self) -> float:
        """Time the loop waited for its next batch, over the timed wall time."""
        return self.stall_seconds / self.seconds if self.seconds > 0 else 0.0

    @property
    def first_loss(self) -> float:
        """Training loss of the first step."""
        return self.steps[0].loss if self.steps else float("nan")

    @property
    def final_loss(self) -> float:
        """Mean training loss over the last quarter of the steps (one step is noisy)."""
        if not self.steps:
            return float("nan")
        tail = self.steps[-max(1, len(self.steps) // 4) :]
        return statistics.fmean(s.loss for s in tail)

    def summary(self) -> dict[str, Any]:
        """The fields the report and the JSON carry for this placement."""
        return {
            "seconds": self.seconds,
            "samples_per_s": self.samples_per_s,
            "stall_fraction": self.stall_fraction,
            "stall_seconds": self.stall_seconds,
            "final_metric": self.final_metric,
            "metric_name": self.metric_name,
            "chance": self.chance,
            "first_loss": self.first_loss,
            "final_loss": self.final_loss,
            "startup_seconds": self.startup_seconds,
            "checkpoint_seconds": self.checkpoint_seconds,
            "samples": self.samples,
            "timed_steps": len(self.timed),
            "world_size": self.world_size,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-able (the summary plus the raw steps)."""
        data = asdict(self)
        data["summary"] = self.summary()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Inverse of `to_dict` (the summary is recomputed, not trusted)."""
        fields = {k: v for k, v in data.items() if k != "summary"}
        fields["steps"] = [StepRecord(**s) for s in fields["steps"]]
        return cls(**fields)
