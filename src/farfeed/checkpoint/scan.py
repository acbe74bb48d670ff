"""What a run's checkpoint area holds: its step directories, from one listing."""

from __future__ import annotations

from dataclasses import dataclass, field

from farfeed.checkpoint.manifest import MANIFEST, parse_step_dir
from farfeed.store.base import Store
from farfeed.transfer.retry import DEFAULT_RETRY, RetryPolicy, retrying


@dataclass(slots=True)
class StepListing:
    """One step directory: its files (relative path -> size) and whether it is committed."""

    step: int
    folder: str
    files: dict[str, int] = field(default_factory=dict)

    @property
    def committed(self) -> bool:
        """True when the manifest (the commit marker) is present."""
        return f"{self.folder}/{MANIFEST}" in self.files


async def scan_steps(store: Store, *, policy: RetryPolicy = DEFAULT_RETRY) -> dict[int, StepListing]:
    """Every step directory in the run's area, by step (one `list` call, retried by ``policy``)."""
    steps: dict[int, StepListing] = {}
    for obj in await retrying(lambda: store.list("step-"), what=f"listing {store.url}", policy=policy):
        folder, _, _name = obj.path.partition("/")
        step = parse_step_dir(folder)
        if step is None or not _name:
            continue
        steps.setdefault(step, StepListing(step, folder)).files[obj.path] = obj.size
    return steps
