"""What a pack or index run reports, and the optional progress bar it shows meanwhile."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class PackReport:
    """The outcome of `pack_images`, `pack_text` or `index_webdataset`.

    ``bytes`` counts what was written (shards or token files; for `index_webdataset`,
    the shards indexed); ``skipped`` lists (source path, reason) for each file left out.
    """

    samples: int
    bytes: int
    shards: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    path: Path | None = None

    @property
    def mb_per_s(self) -> float:
        """Throughput in MB/s (10**6 bytes per second)."""
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def summary(self, verb: str = "packed", unit: str = "samples") -> str:
        """One line for humans: counts, MB, seconds, MB/s, skipped."""
        return (
            f"{verb} {self.samples:,} {unit}, {self.bytes / 1e6:,.1f} MB in {self.shards} "
            f"shard(s), {self.seconds:.1f} s, {self.mb_per_s:,.1f} MB/s, "
            f"{len(self.skipped)} skipped" + (f" -> {self.path}" if self.path else "")
        )


@contextmanager
def progress_bar(
    description: str, total: int | None, *, enabled: bool
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a rich progress bar on stderr when ``enabled``."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
