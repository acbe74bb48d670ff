"""The training entry point each rank runs; `farfeed bench train` launches it.

    python -m farfeed.bench.train.worker PLAN.json                       # one process
    torchrun --nproc-per-node 8 -m farfeed.bench.train.worker PLAN.json  # DDP, one rank per GPU

PLAN.json names the `TrainConfig`, the runs (placement name, data URL, checkpoint URL)
in the order to run them, and where rank 0 writes the results (a JSON list of
`RunResult`), and ``lockstep``: 0 runs them one after another, k trains each group of
k consecutive runs together (`train_lockstep`). Every run starts from a fresh,
identically seeded model. Rank 0 prints one ``farfeed-progress {json}`` line per step
so the launcher can draw progress bars.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farfeed.bench.train import ranks
from farfeed.bench.train.config import TrainConfig
from farfeed.bench.train.loop import Placement, train_lockstep, train_placement
from farfeed.bench.train.ranks import TrainRanks
from farfeed.errors import ConfigError, FarfeedError

PROGRESS_MARK = "farfeed-progress "
#: Bearer token for a gateway started with ``--tokens`` (the same variable `farfeed stream` reads).
TOKEN_ENV = "FARFEED_TOKEN"


@dataclass(frozen=True)
class Plan:
    """What one launch of the worker does: a config, runs in order, and the results file."""

    config: TrainConfig
    runs: tuple[Placement, ...]
    out: Path
    resume: bool = False
    #: 0: the runs one after another. k > 0: each consecutive group of k runs trains in
    #: lockstep (`train_lockstep`: one step of each in turn, in one process).
    lockstep: int = 0

    def __post_init__(self) -> None:
        if self.lockstep < 0 or (self.lockstep and len(self.runs) % self.lockstep):
            raise ConfigError(
                f"lockstep groups of {self.lockstep!r} do not divide {len(self.runs)} runs"
            )

    def groups(self) -> list[tuple[int, tuple[Placement, ...]]]:
        """(index of the first run, runs) for each group trained together."""
        size = self.lockstep or 1
        return [(i, self.runs[i : i + size]) for i in range(0, len(self.runs), size)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what PLAN.json holds)."""
        return {
            "config": self.config.to_dict(),
            "runs": [
                {
                    "name": r.name,
                    "data_url": r.data_url,
                    "checkpoint_url": r.checkpoint_url,
                    "root_url": r.root_url,
                }
                for r in self.runs
            ],
            "out": str(self.out),
            "resume": self.resume,
            "lockstep": self.lockstep,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Parse PLAN.json; unknown keys are rejected."""
        unknown = sorted(set(data) - {"config", "runs", "out", "resume", "lockstep"})
        if unknown:
            raise ConfigError(f"unknown plan keys: {unknown!r}")
        try:
            runs = tuple(Placement(**r) for r in data["runs"])
            return cls(
                config=TrainConfig.from_dict(data["config"]),
                runs=runs,
                out=Path(data["out"]),
                resume=bool(data.get("resume", False)),
                lockstep=int(data.get("lockstep", 0)),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"bad training plan: {exc!r}") from exc

    def write(self, path: Path) -> Path:
        """Write PLAN.json to ``path``."""
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path


def _progress(placement: str, index: int) -> Any:
    def report(step: int, steps: int, loss: float) -> None:
        event = {"run": index, "placement": placement, "step": step, "steps": steps, "loss": loss}
        print(PROGRESS_MARK + json.dumps(event), flush=True)

    return report


def _lane_progress(group: tuple[Placement, ...], first: int) -> Any:
    reports = [_progress(p.name, first + i) for i, p in enumerate(group)]

    def report(lane: int, step: int, steps: int, loss: float) -> None:
        reports[lane](step, steps, loss)

    return report


def run_plan(
    plan: Plan, world: TrainRanks, *, store_options: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Run every placement of the plan (in turn, or by lockstep groups); rank 0 writes and
    returns the results, in run order."""
    results: list[dict[str, Any]] = []
    try:
        for first, group in plan.groups():
            if plan.lockstep:
                done = train_lockstep(
                    plan.config,
                    group,
                    world=world,
                    on_step=_lane_progress(group, first),
                    store_options=store_options,
                )
            else:
                (placement,) = group
                on_step = _progress(placement.name, first) if world.is_main else None
                done = [
                    train_placement(
                        plan.config, placement, world=world, resume=plan.resume,
                        on_step=on_step, store_options=store_options,
                    )
                ]  # fmt: skip
            results.extend(r.to_dict() for r in done)
            if world.is_main:  # written after every group, so a crash keeps what was measured
                plan.out.write_text(json.dumps(results))
    finally:
        ranks.shutdown(world)
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m farfeed.bench.train.worker PLAN.json``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m farfeed.bench.train.worker PLAN.json", file=sys.stderr)
        return 2
    try:
        plan = Plan.from_dict(json.loads(Path(args[0]).read_text()))
        token = os.environ.get(TOKEN_ENV)  # read once here; never stored in the plan
        run_plan(plan, TrainRanks.from_env(), store_options={"token": token} if token else None)
    except FarfeedError as exc:
        print(f"farfeed: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
