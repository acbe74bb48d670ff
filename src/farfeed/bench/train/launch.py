"""Launch the training worker: one process, or `torchrun --nproc-per-node N` (DDP).

The launcher writes PLAN.json, runs ``python -m farfeed.bench.train.worker`` (under
``torch.distributed.run`` when N > 1), turns rank 0's progress lines into a callback,
keeps everything else in a log file, and reads the results back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import farfeed
from farfeed.bench.train.result import RunResult
from farfeed.bench.train.worker import PROGRESS_MARK, Plan
from farfeed.errors import ConfigError, FarfeedError

#: Called with each progress event: {"run", "placement", "step", "steps", "loss"}.
OnProgress = Callable[[dict[str, Any]], None]


def worker_command(plan_path: Path, *, nproc: int) -> list[str]:
    """The command line that runs ``plan_path`` on ``nproc`` ranks."""
    if nproc < 1:
        raise ConfigError(f"nproc must be >= 1, got {nproc!r}")
    module = ["-m", "farfeed.bench.train.worker", str(plan_path)]
    if nproc == 1:
        return [sys.executable, *module]
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--standalone", f"--nproc-per-node={nproc}", *module,
    ]  # fmt: skip


def worker_env(*, threads: int) -> dict[str, str]:
    """The environment for the ranks: ``threads`` intra-op threads, src on the path."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    src = str(Path(farfeed.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


class _Worker:
    """One running worker: its process, its log, and a thread pumping its output."""

    def __init__(self, plan: Plan, *, workdir: Path, name: str, nproc: int, on_progress: OnProgress | None) -> None:  # fmt: skip
        workdir.mkdir(parents=True, exist_ok=True)
        self.plan = plan
        self.log_path = workdir / f"{name}.log"
        command = worker_command(plan.write(workdir / f"{name}.json"), nproc=nproc)
        self._log: IO[str] = self.log_path.open("w")
        self._log.write(" ".join(command) + "\n")
        self._log.flush()
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=worker_env(threads=plan.config.threads),
        )
        self._pump = threading.Thread(target=self._read, args=(on_progress,), daemon=True)
        self._pump.start()

    def _read(self, on_progress: OnProgress | None) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            at = line.find(PROGRESS_MARK)
            if at < 0:
                self._log.write(line)
            elif on_progress is not None:
                on_progress(json.loads(line[at + len(PROGRESS_MARK) :]))

    def wait(self) -> int:
        code = self.proc.wait()
        self._pump.join()
        self._log.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()

    def results(self, code: int) -> list[RunResult]:
        if code != 0:
            tail = self.log_path.read_text().strip().splitlines()[-15:]
            raise FarfeedError(
                f"training worker exited with status {code}; see {self.log_path}:\n"
                + "\n".join(tail)
            )
        if not self.plan.out.is_file():
            raise FarfeedError(f"training worker wrote no results to {self.plan.out}")
        return [RunResult.from_dict(r) for r in json.loads(self.plan.out.read_text())]


def launch(
    plan: Plan, *, workdir: Path, nproc: int = 1, on_progress: OnProgress | None = None
) -> list[RunResult]:
    """Run ``plan`` to the end; returns rank 0's results. A failed rank raises with its log tail."""
    worker = _Worker(plan, workdir=workdir, name="worker", nproc=nproc, on_progress=on_progress)
    try:
        code = worker.wait()
    finally:
        worker.kill()
    return worker.results(code)
