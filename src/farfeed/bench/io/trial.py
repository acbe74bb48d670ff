"""One measured run of `farfeed bench io`, in a process of its own (so peak memory is its own).

    python -m farfeed.bench.io.trial '{"loader": "farfeed", "url": "http://127.0.0.1:9470/io", ...}'
    python -m farfeed.bench.io.trial --serve    # trials as JSON lines on stdin (`TrialRunner`)

Builds the loader (farfeed's `Dataset` + `DataLoader`, or the one-GET-per-sample
baseline), feeds the emulated accelerator, and prints one JSON line of results. Samples
reach the accelerator as bytes (``decode="bytes"``, MLPerf Storage's way) or decoded as
training decodes them (``decode="image"``: JPEG -> RandomResizedCrop + flip + normalise in
the DataLoader workers); the baseline then reads one JPEG file per sample (``files``).
farfeed can also hand over whole `farfeed.loader.Batch` objects (``decode="batch"``, the
copy-free path; ``farfeed bench io --decode batch``).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from farfeed.bench.io.accelerator import Profile, emulate
from farfeed.bench.io.memory import MemorySampler
from farfeed.errors import ConfigError

LOADERS = ("farfeed", "baseline")
#: Starts each result line of ``--serve`` (anything else on stdout is not a result).
RESULT_MARK = "farfeed-trial "
DECODES = ("bytes", "image", "batch")


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
    warmup_s: float = 0.0  # and at least this long from the first batch before measuring
    #: "bytes": raw sample bytes; "image": decoded as in training; "batch": farfeed's
    #: `Batch` objects (farfeed loader only)
    decode: str = "bytes"
    image_size: int = 64  # the training crop for decode="image"
    #: decode="image": URL of the file list (``PATH LABEL`` lines) the baseline reads one
    #: whole file per sample from, paths relative to the list's folder.
    files: str = ""
    #: farfeed's `Dataset` ``store_options`` (the S3 endpoint and keys for an ``s3://`` url).
    store_options: dict[str, Any] | None = None
    #: farfeed's `Dataset` ``shuffle_block`` (1: every sample shuffled on its own).
    shuffle_block: int = 1

    def __post_init__(self) -> None:
        if self.loader not in LOADERS:
            raise ConfigError(f"loader must be one of {LOADERS}, got {self.loader!r}")
        if self.decode not in DECODES:
            raise ConfigError(f"decode must be one of {DECODES}, got {self.decode!r}")
        if self.decode == "image" and self.loader == "baseline" and not self.files:
            raise ConfigError('the decode="image" baseline reads files: give files=URL of the list')


def collate_bin(batch: list[dict[str, Any]]) -> Any:
    """The batch's sample bytes as one uint8 tensor: it reaches the training process
    through shared memory, as decoded image batches do (a list of bytes would be pickled)."""
    return to_tensor([sample["bin"] for sample in batch])


def to_tensor(blobs: list[bytes]) -> Any:
    import torch

    return torch.frombuffer(bytearray(b"".join(blobs)), dtype=torch.uint8)


def _farfeed_loader(spec: TrialSpec) -> tuple[Any, Any]:
    from farfeed.loader import DataLoader, Dataset

    # decode="bytes": dicts of bytes, joined by collate_bin; "image": decoded as in
    # training; "batch": farfeed.loader.Batch objects (the copy-free path)
    by_decode: dict[str, dict[str, Any]] = {
        "bytes": {},
        "image": {"decode": "image", "image_size": spec.image_size, "train": True},
        "batch": {"decode": "batch", "batch_size": spec.batch_size},
    }
    ds = Dataset(
        spec.url, seed=spec.seed, memory_budget=spec.memory_budget,
        store_options=spec.store_options, shuffle_block=spec.shuffle_block,
        **by_decode[spec.decode],
    )  # fmt: skip
    collate: dict[str, Any] = {"collate_fn": collate_bin} if spec.decode == "bytes" else {}
    loader = DataLoader(ds, batch_size=spec.batch_size, num_workers=spec.workers, **collate)
    return loader, ds


def collate_baseline(batch: list[dict[str, Any]]) -> Any:
    """Same as `collate_bin`, for the baseline's items."""
    return to_tensor([item["data"] for item in batch])


def _image_folder_loader(spec: TrialSpec) -> tuple[Any, Any]:
    """What most training scripts run: an ImageFolder-like map-style Dataset (one GET per
    file, over the same link) and a plain torch DataLoader with shuffle and workers."""
    import torch
    import torch.utils.data

    from farfeed.bench.io.baseline import ImageFolderHTTP, fetch_file_list
    from farfeed.loader.decode import image_pipeline

    files = fetch_file_list(spec.files)  # the file list crosses the link too
    folder = spec.files.rpartition("/")[0]
    ds = ImageFolderHTTP(folder, files, transform=image_pipeline(spec.image_size, train=True))
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=spec.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(spec.seed),
        num_workers=spec.workers,
    )
    return loader, None


def _baseline_loader(spec: TrialSpec) -> tuple[Any, Any]:
    import torch
    import torch.utils.data

    from farfeed.bench.io.baseline import PerSampleHTTP

    if spec.decode == "image":
        return _image_folder_loader(spec)
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


def cpu_seconds() -> float:
    """CPU seconds of this process and its waited-for children (DataLoader workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_trial(spec: TrialSpec, *, cpu_since: float = 0.0) -> dict[str, Any]:
    """Run the accelerator on the loader; figures in a flat dict. ``loader_cpu_s`` counts
    from ``cpu_since`` (`cpu_seconds` when a served trial began; 0: the process's life)."""
    import torch.utils.data  # noqa: F401 - a training script has torch imported already

    # imports before t0, as a training script has them: torch, the loader, the HTTP stack
    import farfeed.store.gateway  # noqa: F401
    from farfeed.loader import DataLoader, Dataset  # noqa: F401

    if spec.decode == "image":  # and torchvision's transforms, inherited by the workers
        import torchvision.transforms.v2  # noqa: F401

    memory = MemorySampler().start(background=False)  # sampling from the first batch on
    t0 = time.monotonic()
    loader, ds = (_farfeed_loader if spec.loader == "farfeed" else _baseline_loader)(spec)
    profile = Profile("trial", spec.sample_bytes, spec.batch_size, spec.compute_s)
    sampled = time.monotonic()
    ready = memory.sample()[1]
    # reading /proc/*/smaps_rollup takes ~20 ms here: the bench's time, not the loader's
    t0 += time.monotonic() - sampled
    batches = _sampling_after_first(iter(loader), memory)
    result = emulate(
        batches,
        profile=profile,
        count=spec.batches,
        warmup=spec.warmup,
        t0=t0,
        size_of=_size_of(spec),
        max_seconds=spec.max_seconds,
        warmup_s=spec.warmup_s,
        block=max(1, spec.workers),
    )
    stats = ds.stats() if ds is not None else {}
    del batches  # stops the workers
    peak = memory.stop()
    cpu = cpu_seconds() - cpu_since
    out: dict[str, Any] = {"spec": asdict(spec), **result.as_dict()}
    out.update(peak)
    out["ready_anon_mb"] = ready / 2**20  # before the workers start: imports, index, no data
    out["loader_cpu_s"] = cpu
    out["bytes_per_s"] = result.samples_per_s * spec.sample_bytes
    out["retries"] = stats.get("retries", 0.0)
    out["rtt_estimate_ms"] = stats.get("rtt_s", 0.0) * 1e3
    out["peak_bytes_held_mb"] = stats.get("peak_bytes_held", 0.0) / 2**20
    return out


def _sampling_after_first(batches: Iterator[Any], memory: MemorySampler) -> Iterator[Any]:
    """``batches``; the memory sampler's thread starts once the first is in hand. Reading
    each process's /proc/PID/smaps_rollup costs ~20 ms of kernel CPU and holds the
    process's mmap lock, which its allocations wait for: every 50 ms through start-up that
    is the bench slowing the first batch (~0.07 s measured on 2 cores), which a training
    job does not pay. The peak it looks for comes later, in the steady state."""
    for k, batch in enumerate(batches):
        if k == 0:
            memory.start_background()
        yield batch


def _size_of(spec: TrialSpec) -> Any:
    """Samples in one batch: (images, labels) batches count labels; byte batches, bytes."""
    if spec.decode == "image":
        return lambda batch: len(batch[1])
    if spec.decode == "batch":
        return len
    return lambda batch: batch.numel() // spec.sample_bytes


def serve() -> None:
    """``--serve``: one trial per JSON line on stdin, one JSON line of results (or
    ``{"error": ...}``) on stdout each, in one process: torch is imported once."""
    import gc
    import traceback

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            spec = TrialSpec(**json.loads(line))
            out = run_trial(spec, cpu_since=cpu_seconds())
        except Exception:  # reported to the parent, which raises it with the trial named
            out = {"error": traceback.format_exc(limit=8)}
        gc.collect()  # the trial's loader and buffers go before the next one starts
        print(RESULT_MARK + json.dumps(out), flush=True)


def main() -> None:
    if sys.argv[1:] == ["--serve"]:
        serve()
        return
    spec = TrialSpec(**json.loads(sys.argv[1]))
    print(json.dumps(run_trial(spec)), flush=True)


if __name__ == "__main__":
    main()
