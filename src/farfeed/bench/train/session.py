"""What `farfeed bench train` and `farfeed demo` share around `run_train_bench`: progress
bars, sample data under OUT/storage, work folders under OUT/work, and the report.

    with TrainSession(Path("bench-out"), console=Console()) as session:
        data = session.sample_data(("resnet",))["resnet"]
        session.run(TrainBenchSpec(config=TrainConfig(), dataset=data, link_name=..., link=...))
    report = session.report(title="resnet", command="farfeed bench train -w resnet", table_title="resnet")

`bench_workload` is the whole of `farfeed bench train`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from farfeed.bench.train.config import TrainConfig
from farfeed.bench.train.harness import run_train_bench
from farfeed.bench.train.progress import TrainProgress
from farfeed.bench.train.report import console_table, write_report
from farfeed.bench.train.sample_data import ensure_lora_base, ensure_sample_data
from farfeed.bench.train.sites import Sites, open_sites
from farfeed.bench.train.spec import TrainBenchSpec, link_for
from farfeed.errors import ConfigError

#: Per-rank batch sizes on a GPU when none is given (the CPU defaults are in `TrainConfig`).
GPU_BATCH = {"resnet": 256, "llm": 8}


class TrainSession:
    """Train benchmarks run under one output folder, with one set of progress bars; the
    results gather in ``results`` for `report` (call it after the ``with`` block)."""

    def __init__(self, out: Path, *, console: Any, progress: bool = True) -> None:
        self.out = Path(out).resolve()
        self.storage = self.out / "storage"
        self.console = console
        self.results: list[dict[str, Any]] = []
        self._bars = TrainProgress(console, enabled=progress)
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> TrainSession:
        self._stack.enter_context(self._bars)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.__exit__(exc_type, exc, tb)

    def log(self, message: str) -> None:
        """A status line above the bars."""
        self._bars.log(message)

    def task(self, name: str, *, total: int) -> Any:
        """A progress bar for a job of ``total`` units; call the result once per unit."""
        return self._bars.task(name, total=total)

    def workdir(self, workload: str) -> Path:
        """Where a workload's plans, logs and raw results go: OUT/work/WORKLOAD."""
        return self.out / "work" / workload

    def sample_data(
        self,
        workloads: Sequence[str],
        *,
        images: int = 800,
        text_bytes: int = 2 * 2**20,
        seed: int = 0,
    ) -> dict[str, Path]:
        """Make and pack what ``workloads`` need under OUT/storage (`ensure_sample_data`)."""
        return ensure_sample_data(
            self.storage, workloads=tuple(workloads), images=images, text_bytes=text_bytes,
            seed=seed, on_status=self.log,
        )  # fmt: skip

    def open_sites(self, *, links: Mapping[str, Any]) -> Sites:
        """Start the gateway over OUT/storage and the emulated ``links``, for several
        `run` calls; they stop with the session."""
        return self._stack.enter_context(open_sites(self.storage, links=links))

    def run(self, spec: TrainBenchSpec, *, sites: Sites | None = None) -> dict[str, Any]:
        """`run_train_bench` with a progress bar; the result is kept for the report."""
        config = spec.config
        runs = spec.rounds * len(spec.placements())
        on_progress = self._bars.bar(config.workload, runs=runs, steps=config.steps)
        result = run_train_bench(spec, on_progress=on_progress, on_status=self.log, sites=sites)
        self.results.append(result)
        return result

    def report(
        self,
        *,
        title: str,
        command: str,
        table_title: str,
        extra: dict[str, Any] | None = None,
        head: Sequence[str] = (),
    ) -> Path:
        """Write OUT/report.md, results.json and the plots, print the table; report.md's
        path. ``extra``, ``head``: see `write_report`."""
        report: Path = write_report(
            self.results, self.out, title=title, command=command, extra=extra, head=head
        )
        if self.results:
            self.console.print(console_table(self.results, title=table_title))
        return report


def bench_workload(
    config: TrainConfig,
    *,
    out: Path,
    console: Any,
    data: Path | None = None,
    link: str = "tokyo-fukuoka",
    rtt_ms: Sequence[float] = (),
    remote_url: str | None = None,
    lora: bool = False,
    rounds: int = 3,
    nproc: int = 1,
    checkpoints: bool = True,
    schedule: str = "auto",
    json_out: Path | None = None,
    command: str = "farfeed bench train",
    progress: bool = True,
) -> dict[str, Any]:
    """`farfeed bench train`: train ``config`` local, near and remote (``link``, or the RTTs
    of ``rtt_ms``, or the real site at ``remote_url``) on ``data`` (default: sample data),
    write the report under ``out`` (and ``json_out``), print the table; returns the result."""
    link_name, remote, sweep = link_for(link, rtt_ms)
    if remote_url is not None:
        if data is None:
            raise ConfigError("--remote-url needs --data: the local copy of the same dataset")
        link_name = f"real ({remote_url})"
    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda asked for, but torch sees no CUDA device")
        if config.batch_size is None:
            config = config.replace(batch_size=GPU_BATCH[config.workload])
    workload = config.workload
    with TrainSession(out, console=console, progress=progress) as session:
        if data is None:
            data = session.sample_data((workload,))[workload]
        if lora:
            config = config.replace(lora_base=_lora_base(config, data))
        spec = TrainBenchSpec(
            config=config, dataset=data, link_name=link_name, link=remote, sweep_rtts=sweep,
            rounds=rounds, nproc=nproc, checkpoints=checkpoints, workdir=session.workdir(workload),
            remote_url=remote_url, schedule=schedule,
        )  # fmt: skip
        result = session.run(spec)
    title = f"{workload}: local vs near vs remote ({link_name})"
    report = session.report(
        title=f"farfeed bench train: {workload}", command=command, table_title=title
    )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1))
    console.print(f"report: {report}" + (f"; JSON: {json_out}" if json_out else ""))
    return result


def _lora_base(config: TrainConfig, data: Path) -> str:
    """A base Llama published beside ``data`` for a LoRA run, sized to its vocabulary."""
    from farfeed.bench.train.data import read_facts

    vocab = read_facts(str(data)).vocab_size
    return ensure_lora_base(
        data.resolve().parent, size=config.model_size, vocab_size=vocab, seq_len=config.seq_len
    )
