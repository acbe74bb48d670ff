"""The training entry point each rank runs; `farfeed bench train` launches it.

    python -m farfeed.bench.train_worker PLAN.json                       # one process
    torchrun --nproc-per-node 8 -m farfeed.bench.train_worker PLAN.json  # DDP, one rank per GPU

PLAN.json names the `TrainConfig`, the runs (placement name, data URL, checkpoint URL)
in the order to run them, and where rank 0 writes the results (a JSON list of
`RunResult`). Every run starts from a fresh, identically seeded model. Rank 0 prints one
``farfeed-progress {json}`` line per step so the launcher can draw progress bars.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farfeed.bench import train_dist
from farfeed.bench.train_config import TrainConfig
from farfeed.bench.train_dist import World
from farfeed.bench.train_loop import Placement, train_placement
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
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Parse PLAN.json; unknown keys are rejected."""
        unknown = sorted(set(data) - {"config", "runs", "out", "resume"})
        if unknown:
            raise ConfigError(f"unknown plan keys: {unknown!r}")
        try:
            runs = tuple(Placement(**r) for r in data["runs"])
            return cls(
                config=TrainConfig.from_dict(data["config"]),
                runs=runs,
                out=Path(data["out"]),
                resume=bool(data.get("resume", False)),
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


def run_plan(
    plan: Plan, world: World, *, store_options: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Run every placement of the plan in order; rank 0 writes and returns the results."""
    results: list[dict[str, Any]] = []
    try:
        for index, placement in enumerate(plan.runs):
            on_step = _progress(placement.name, index) if world.is_main else None
            result = train_placement(
                plan.config,
                placement,
                world=world,
                resume=plan.resume,
                on_step=on_step,
                store_options=store_options,
            )
            results.append(result.to_dict())
            if world.is_main:  # written after every run, so a crash keeps what was measured
                plan.out.write_text(json.dumps(results))
    finally:
        train_dist.shutdown(world)
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m farfeed.bench.train_worker PLAN.json``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m farfeed.bench.train_worker PLAN.json", file=sys.stderr)
        return 2
    try:
        plan = Plan.from_dict(json.loads(Path(args[0]).read_text()))
        token = os.environ.get(TOKEN_ENV)  # read once here; never stored in the plan
        run_plan(plan, World.from_env(), store_options={"token": token} if token else None)
    except FarfeedError as exc:
        print(f"farfeed: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
