"""One measured run of `farfeed bench io`, in a process of its own (so peak memory is its own).

    python -m farfeed.bench.io.trial '{"loader": "farfeed", "url": "http://127.0.0.1:9470/io", ...}'

Builds the loader (farfeed's `Dataset` + `DataLoader`, or the one-GET-per-sample
baseline), feeds the emulated accelerator, and prints one JSON line of results.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from farfeed.bench.io.accelerator import Profile, emulate
from farfeed.bench.io.memory import MemorySampler
from farfeed.errors import ConfigError

LOADERS = ("farfeed", "baseline")


@dataclass(frozen=True)
class TrialSpec:
    """What one trial runs: which loader, against which URL, with which accelerator."""

    loader: str
    url: str
    sample_bytes: int
    batch_size: int
    compute_s: float
    batches: int
    warmup: int
    workers: int
    memory_budget: int = 512 * 2**20
    seed: int = 0
    max_seconds: float = 60.0  # stop measuring after this long (the baseline at 100 ms is slow)

    def __post_init__(self) -> None:
        if self.loader not in LOADERS:
            raise ConfigError(f"loader must be one of {LOADERS}, got {self.loader!r}")


def collate_bin(batch: list[dict[str, Any]]) -> Any:
    """The batch's sample bytes as one uint8 tensor: it reaches the training process
    through shared memory, as decoded image batches do (a list of bytes would be pickled)."""
    return to_tensor([sample["bin"] for sample in batch])


def to_tensor(blobs: list[bytes]) -> Any:
    import torch

    return torch.frombuffer(bytearray(b"".join(blobs)), dtype=torch.uint8)


def _farfeed_loader(spec: TrialSpec) -> tuple[Any, Any]:
    from farfeed.loader import DataLoader, Dataset

    ds = Dataset(spec.url, seed=spec.seed, memory_budget=spec.memory_budget)
    loader = DataLoader(
        ds, batch_size=spec.batch_size, num_workers=spec.workers, collate_fn=collate_bin
    )
    return loader, ds


def collate_baseline(batch: list[dict[str, Any]]) -> Any:
    """Same as `collate_bin`, for the baseline's items."""
    return to_tensor([item["data"] for item in batch])


def _baseline_loader(spec: TrialSpec) -> tuple[Any, Any]:
    import torch
    import torch.utils.data

    from farfeed.bench.io.baseline import PerSampleHTTP
    from farfeed.loader.index import read_index
    from farfeed.store import open_store
    from farfeed.transfer import run_sync

    async def load() -> Any:
        async with await open_store(spec.url) as store:
            return await read_index(store)

    index = run_sync(load)
    spans = [index.span(int(i)) for i in index.ids("train")]
    ds = PerSampleHTTP(spec.url, spans)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=spec.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(spec.seed),
        num_workers=spec.workers,
        collate_fn=collate_baseline,
    )
    return loader, None


def run_trial(spec: TrialSpec) -> dict[str, Any]:
    """Run the accelerator on the loader; figures in a flat dict."""
    import torch.utils.data  # noqa: F401 - a training script has torch imported already

    # imports before t0, as a training script has them: torch, the loader, the HTTP stack
    import farfeed.store.gateway  # noqa: F401
    from farfeed.loader import DataLoader, Dataset  # noqa: F401

    memory = MemorySampler().start()
    t0 = time.monotonic()
    loader, ds = (_farfeed_loader if spec.loader == "farfeed" else _baseline_loader)(spec)
    profile = Profile("trial", spec.sample_bytes, spec.batch_size, spec.compute_s)
    ready = memory.sample()[1]
    batches = iter(loader)
    result = emulate(
        batches,
        profile=profile,
        count=spec.batches,
        warmup=spec.warmup,
        t0=t0,
        size_of=lambda batch: batch.numel() // spec.sample_bytes,
        max_seconds=spec.max_seconds,
    )
    stats = ds.stats() if ds is not None else {}
    del batches  # stops the workers
    peak = memory.stop()
    self_use = resource.getrusage(resource.RUSAGE_SELF)
    child_use = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = self_use.ru_utime + self_use.ru_stime + child_use.ru_utime + child_use.ru_stime
    out: dict[str, Any] = {"spec": asdict(spec), **result.as_dict()}
    out.update(peak)
    out["ready_anon_mb"] = ready / 2**20  # before the workers start: imports, index, no data
    out["loader_cpu_s"] = cpu
    out["bytes_per_s"] = result.samples_per_s * spec.sample_bytes
    out["retries"] = stats.get("retries", 0.0)
    out["rtt_estimate_ms"] = stats.get("rtt_s", 0.0) * 1e3
    out["peak_bytes_held_mb"] = stats.get("peak_bytes_held", 0.0) / 2**20
    return out


def main() -> None:
    spec = TrialSpec(**json.loads(sys.argv[1]))
    print(json.dumps(run_trial(spec)), flush=True)


if __name__ == "__main__":
    main()
