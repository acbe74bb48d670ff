"""What `farfeed demo` runs: its jobs and their sizes (`DemoSpec`), full or ``--quick``.

DemoSpec(out=Path("demo-out"))                    # the full demo, <= 10 min on 2 quiet cores
DemoSpec.quick(out=Path("demo-out"))              # the same jobs, smaller: ~3 min
DemoSpec(jobs=("data-bound",), link="transpacific")
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farfeed.bench.io.databound import DataBoundSpec
from farfeed.bench.train.config import TrainConfig
from farfeed.errors import ConfigError

#: The demo's jobs, in the order they run: two training jobs and the data-bound one.
JOBS = ("resnet", "llm", "data-bound")
TRAINING = ("resnet", "llm")


@dataclass(frozen=True)
class DemoSpec:
    """The demo's settings. ``jobs``: some of `JOBS`. ``link``: the `farfeed wan` preset of
    the training jobs' remote placement; its RTT joins the data-bound job's RTTs."""

    out: Path = Path("demo-out")
    link: str = "tokyo-fukuoka"
    jobs: tuple[str, ...] = JOBS
    rounds: int = 2
    images: int = 800
    text_bytes: int = 2 * 2**20
    #: Sized for <= 10 min in all on 2 cores: a ResNet-18 step at 64 px is ~1.2 s of one
    #: core here, a tiny Llama step ~0.35 s, each trained 3 times (local, near, remote).
    steps: dict[str, int] = field(default_factory=lambda: {"resnet": 24, "llm": 48})
    seed: int = 0
    threads: int = 1
    checkpoints: bool = True
    image_size: int = 64
    schedule: str = "auto"
    bound: DataBoundSpec = field(default_factory=DataBoundSpec)

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {self.rounds!r}")
        unknown = [j for j in self.jobs if j not in JOBS]
        if unknown or not self.jobs:
            raise ConfigError(
                f"jobs must be some of {', '.join(JOBS)}, got {', '.join(map(repr, self.jobs))}"
            )

    @classmethod
    def quick(cls, **changes: Any) -> DemoSpec:
        """The same jobs, smaller: one round of shorter training without checkpoints, 4 s
        per data-bound trial."""
        quick: dict[str, Any] = {
            "rounds": 1,
            "steps": {"resnet": 16, "llm": 24},
            "checkpoints": False,
            "bound": DataBoundSpec(seconds=4.0, warmup_s=1.5),
        }
        return cls(**{**quick, **changes})

    def replace(self, **changes: Any) -> DemoSpec:
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def workloads(self) -> tuple[str, ...]:
        """The training jobs among ``jobs``."""
        return tuple(j for j in self.jobs if j in TRAINING)

    def bound_rtts_ms(self, link_rtt_s: float) -> tuple[float, ...]:
        """The data-bound job's RTTs: its own (0, 15, 100 ms) and the demo link's."""
        return tuple(sorted({*self.bound.rtts_ms, round(link_rtt_s * 1000, 3)}))

    def config(self, workload: str) -> TrainConfig:
        """The tiny CPU job for ``workload``: resnet18 at 64 px, or a ~1 M-parameter Llama."""
        common: dict[str, Any] = {
            "seed": self.seed,
            "threads": self.threads,
            "steps": self.steps[workload],
        }
        if workload == "resnet":
            return TrainConfig(
                workload="resnet",
                arch="resnet18",
                image_size=self.image_size,
                batch_size=16,
                **common,
            )
        return TrainConfig(workload="llm", model_size="tiny", seq_len=128, batch_size=16, **common)
