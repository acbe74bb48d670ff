"""The trainer recipes in examples/trainers/, run as a user runs them: a crashed job, the resumed
job, and the checks on what each rank recorded (``--record``, see examples/trainers/record.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from helpers.samples import assert_exactly_once

#: The recipes the tests run (the very files the docs point at).
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "trainers"
#: `record.CRASH_EXIT`: the status of a simulated crash.
CRASH_EXIT = 75


def run_job(args: list[str], *, log: Path, timeout: float = 240, env: dict[str, str] | None = None) -> int:
    """Run ``python ARGS`` in its own process group (it may start more ranks), wait for it
    and for every process it started, and return the first process's exit status. Output
    goes to ``log``; a job still running after ``timeout`` seconds is killed and fails."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        try:
            status = proc.wait(timeout=timeout)
            while _group_alive(proc.pid):  # ranks that outlive the first process
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(args, timeout)
                time.sleep(0.1)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError(f"job ran past {timeout} s: {args}\n{log.read_text()[-3000:]}") from None
    return status


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process of process group ``pgid`` remains."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            return True
    return False


def records(folder: Path) -> dict[int, list[dict[str, Any]]]:
    """rank -> the lines that rank recorded, in order."""
    out = {}
    for path in sorted(folder.glob("rank-*.jsonl")):
        out[int(path.stem.split("-")[1])] = [json.loads(line) for line in path.read_text().splitlines()]
    return out


def check_crash_and_resume(
    crashed: dict[int, list[dict[str, Any]]],
    resumed: dict[int, list[dict[str, Any]]],
    *,
    dataset: Path,
    epochs: int,
    ranks: int = 2,
) -> int:
    """The resumed job restored exactly what was saved (every rank's state digest), and the
    batches it trained, with the crashed job's batches before that checkpoint, cover every
    sample exactly once per epoch over all ranks. Returns the step resumed from."""
    assert sorted(crashed) == sorted(resumed) == list(range(ranks))
    per_epoch: dict[int, list[str]] = defaultdict(list)
    starts = set()
    for rank in range(ranks):
        (resume,) = [r for r in resumed[rank] if r["kind"] == "resumed"]
        start = resume["step"]
        starts.add(start)
        saved = {r["step"]: r["digest"] for r in crashed[rank] if r["kind"] == "saved"}
        assert resume["digest"] == saved[start], f"rank {rank}: state after resume != state saved at step {start}"
        before = [r for r in crashed[rank] if r["kind"] == "batch"]
        assert max(r["step"] for r in before) > start, "the crash came after the checkpoint: work was redone"
        for r in before:
            if r["step"] < start:
                per_epoch[r["epoch"]] += r["keys"]
        for r in resumed[rank]:
            if r["kind"] == "batch":
                assert r["step"] >= start
                per_epoch[r["epoch"]] += r["keys"]
    assert len(starts) == 1, f"ranks resumed from different steps: {starts}"
    assert sorted(per_epoch) == list(range(epochs))
    for epoch in range(epochs):
        assert_exactly_once(per_epoch[epoch], dataset)
    return starts.pop()
