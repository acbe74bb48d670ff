"""`farfeed demo`: the PoC's table, reproduced on this machine in a few minutes.

    outcome = run_demo(DemoSpec(out=Path("demo-out")), console=Console())

Makes sample images and text and packs them (the storage site), starts `farfeed serve`
and `farfeed wan --preset tokyo-fukuoka` as their own processes, trains a small ResNet
and a small Llama local / near / remote (interleaved rounds, same seed and steps),
prints the PoC-shaped table beside the PoC's own numbers, and writes report.md,
results.json and the plots to the output folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farfeed.bench.train.config import TrainConfig
from farfeed.bench.train.session import TrainSession
from farfeed.bench.train.sites import NEAR, REMOTE
from farfeed.bench.train.spec import TrainBenchSpec
from farfeed.errors import ConfigError

TITLE = "farfeed demo: the PoC's table on this machine"


@dataclass(frozen=True)
class DemoSpec:
    """What the demo runs; the defaults finish in well under 10 minutes on 2 CPU cores."""

    out: Path = Path("demo-out")
    link: str = "tokyo-fukuoka"
    workloads: tuple[str, ...] = ("resnet", "llm")
    rounds: int = 3
    images: int = 800
    text_bytes: int = 2 * 2**20
    steps: dict[str, int] = field(default_factory=lambda: {"resnet": 40, "llm": 80})
    seed: int = 0
    threads: int = 1
    checkpoints: bool = True
    image_size: int = 64
    schedule: str = "auto"

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {self.rounds!r}")
        unknown = sorted(set(self.workloads) - {"resnet", "llm"})
        if unknown or not self.workloads:
            raise ConfigError(
                f"workloads must be some of ('resnet', 'llm'), got {self.workloads!r}"
            )

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


@dataclass
class DemoOutcome:
    """What the demo produced: the per-workload results, the report, and how long it took."""

    results: list[dict[str, Any]]
    report: Path
    seconds: float


def run_demo(
    spec: DemoSpec, *, console: Any, progress: bool = True, command: str = "farfeed demo"
) -> DemoOutcome:
    """Run the whole demo (see module docstring) and print the table."""
    from farfeed.wan import Link

    started = time.perf_counter()
    link = Link.from_preset(spec.link)
    with TrainSession(spec.out, console=console, progress=progress) as session:
        session.log(f"storage site: {session.storage}")
        datasets = session.sample_data(
            spec.workloads, images=spec.images, text_bytes=spec.text_bytes, seed=spec.seed
        )
        near = link.with_(rtt=0.0, jitter=0.0, loss=0.0)
        session.log(
            f"starting the gateway over {session.storage} and the emulated links (0 ms, {spec.link})"
        )
        sites = session.open_sites(links={NEAR: near, REMOTE: link})
        for workload in spec.workloads:
            bench = TrainBenchSpec(
                config=spec.config(workload),
                dataset=datasets[workload],
                link_name=spec.link,
                link=link,
                rounds=spec.rounds,
                workdir=session.workdir(workload),
                checkpoints=spec.checkpoints,
                schedule=spec.schedule,
            )
            session.run(bench, sites=sites)
    seconds = time.perf_counter() - started
    report = session.report(
        title=TITLE,
        command=command,
        table_title=f"{TITLE} ({spec.link}, {link.rtt * 1000:g} ms)",
        extra={"demo_seconds": seconds},
    )
    console.print(
        f"report: {report}  (plots and results.json beside it); took {seconds / 60:.1f} min"
    )
    return DemoOutcome(results=session.results, report=report, seconds=seconds)
