"""Progress bars (rich) for `farfeed bench train` and `farfeed demo`.

One bar per benchmark: total = runs x steps; its label names the placement and round
being trained and the latest loss. `TrainProgress.task` is a bar for any other job counted
in units (the demo's data-bound trials).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class TrainProgress:
    """``with TrainProgress(console) as p: run_train_bench(spec, on_progress=p.bar("resnet", total))``."""

    def __init__(self, console: Console | None = None, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )

    def __enter__(self) -> TrainProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    def bar(self, name: str, *, runs: int, steps: int) -> Any:
        """A callback for `run_train_bench`'s ``on_progress`` driving one new bar."""
        task = self._progress.add_task(f"{name}: starting", total=runs * steps)
        done: dict[tuple[str, int], int] = {}  # steps done per (placement, run)

        def update(event: dict[str, Any]) -> None:
            done[(event["placement"], event["run"])] = event["step"]
            label = (
                f"{name}: {event['placement']:<6} run {event['run'] + 1} loss {event['loss']:.3f}"
            )
            self._progress.update(task, completed=sum(done.values()), description=label)

        return update

    def task(self, name: str, *, total: int) -> Any:
        """A callback ``advance(label)`` for a job counted in units (e.g. trials): each call
        completes one unit and shows ``label`` beside ``name``."""
        task = self._progress.add_task(f"{name}: starting", total=total)

        def advance(label: str) -> None:
            self._progress.update(task, advance=1, description=f"{name}: {label}")

        return advance

    def log(self, message: str) -> None:
        """A status line above the bars."""
        self._progress.console.print(f"[dim]{message}[/dim]") if self.enabled else None
