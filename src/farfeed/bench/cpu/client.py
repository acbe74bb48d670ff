"""One client run of `farfeed bench cpu`, in a fresh process (its CPU tree is then its own).

    python -m farfeed.bench.cpu.client '{"mode": "workers-2", "url": "http://127.0.0.1:9470/data", ...}'

Reads one epoch in the given mode and prints one JSON line: bytes delivered, and the
steady-state window's wall time and CPU seconds of this process tree (this process and
its DataLoader workers), of the gateway's tree and of the emulator's. The window opens
once ``warmup`` of the epoch is delivered (start-up, first connections and the first
batches are left out) and closes when the last sample arrives; this process reads all
three trees' /proc counters at both moments (same machine, same instants).
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from farfeed.bench.cpu.config import ARENA_BYTES, FLOOR, FLOOR_STORE, decode_of, workers_of
from farfeed.bench.cpu.procstat import ProcessCpu, snapshot, tree_delta
from farfeed.errors import ConfigError


@dataclass(frozen=True)
class ClientSpec:
    """What one client run does. ``url`` is the dataset's (through the emulator when one is
    in front); ``shards`` are the floor's objects under it; ``member`` the sample's bytes."""

    mode: str
    url: str
    gateway_pid: int
    wan_pid: int | None = None
    warmup: float = 0.1
    batch_size: int = 32
    epochs: int = 1
    shards: tuple[str, ...] = ()
    connections: int = 4
    member: str = "bin"
    seed: int = 0

    def __post_init__(self) -> None:
        workers_of(self.mode)
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"warmup must be a fraction in [0, 1), got {self.warmup!r}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs!r}")
        if self.mode == FLOOR_STORE and self.connections != 1:
            raise ConfigError(f"floor-store reads over one connection, got {self.connections!r}")


Mark = tuple[float, int, dict[int, ProcessCpu], dict[int, ProcessCpu], dict[int, ProcessCpu]]


class MeasureWindow:
    """Counts what the consumer received (``units``: samples, or bytes for the floor) and
    marks time and CPU when the count reaches ``start_at`` and when it reaches ``total``."""

    def __init__(self, *, total: int, start_at: int, gateway_pid: int, wan_pid: int | None):
        self.total, self.start_at = total, start_at
        self._sites = (gateway_pid, wan_pid)
        self.units = self.bytes = 0
        self.start: Mark | None = None
        self.end: Mark | None = None
        self._lock = threading.Lock()
        self.t0 = time.monotonic()
        if start_at <= 0:
            self.start = self._mark()

    def _mark(self) -> Mark:
        gateway, wan = self._sites
        return (time.monotonic(), self.bytes, snapshot([os.getpid()]), snapshot([gateway]),
                snapshot([wan]))  # fmt: skip

    def add(self, units: int, nbytes: int) -> None:
        with self._lock:
            self.units += units
            self.bytes += nbytes
            if self.start is None and self.units >= self.start_at:
                self.start = self._mark()
            if self.end is None and self.units >= self.total:
                self.end = self._mark()

    def result(self) -> dict[str, Any]:
        complete = self.end is not None and self.start is not None
        end = self.end or self._mark()
        start = self.start or end
        return {
            "total_units": self.units,
            "total_bytes": self.bytes,
            "window_bytes": end[1] - start[1],
            "window_s": end[0] - start[0],
            "startup_s": start[0] - self.t0,
            "client_cpu_s": tree_delta(start[2], end[2]),
            "gateway_cpu_s": tree_delta(start[3], end[3]),
            "wan_cpu_s": tree_delta(start[4], end[4]) if self._sites[1] else None,
            "window": "steady" if complete else "incomplete",
        }


def warm_arena(nbytes: int = ARENA_BYTES) -> memoryview:
    """``nbytes`` of memory (a ``bytearray``'s, from a cache line on) written once (zeros,
    1 MiB at a time), so that its pages exist before a window opens: a loader's reused
    arena, whose page faults were paid long ago."""
    from farfeed.bench.cpu.floor import aligned_buffer

    arena = aligned_buffer(nbytes)  # fresh pages: mapped on first write, not here
    zeros = bytes(1 << 20)
    for at in range(0, nbytes, len(zeros)):
        end = min(at + len(zeros), nbytes)
        arena[at:end] = zeros[: end - at]
    return arena


def run_floor(spec: ClientSpec, shard_bytes: int) -> dict[str, Any]:
    """Pull every shard whole (see `farfeed.bench.cpu.floor`); the window opens after
    ``warmup`` of the bytes. ``floor-store``: over one connection, each body stored in its
    own place of a warm `ARENA_BYTES` arena (made before the window: not counted)."""
    from farfeed.bench.cpu.floor import read_shards

    into = warm_arena() if spec.mode == FLOOR_STORE else None
    window = MeasureWindow(total=shard_bytes, start_at=math.ceil(spec.warmup * shard_bytes),
                    gateway_pid=spec.gateway_pid, wan_pid=spec.wan_pid)  # fmt: skip
    read_shards(spec.url, spec.shards, connections=spec.connections,
                on_bytes=lambda n: window.add(n, n), into=into)  # fmt: skip
    return window.result()


def run_loader(spec: ClientSpec) -> dict[str, Any]:
    """``epochs`` epochs of ``farfeed.Dataset``, iterated here (in-process) or through
    ``farfeed.loader.DataLoader`` with N workers: ``decode="raw"`` with the default collate
    (dicts of bytes, what users got so far), or ``decode="batch"`` (`farfeed.loader.Batch`:
    one tensor per batch, in the workers' shared arenas). Each sample's member bytes are
    counted, not read. The window opens at a batch boundary of the last epoch: a training
    job runs many epochs, and what is set up once per job (the workers' arenas, their
    pages) is then paid for."""
    from farfeed.loader import DataLoader, Dataset

    t0 = time.monotonic()
    workers = workers_of(spec.mode)
    batch, key = spec.batch_size, spec.member
    decode = decode_of(spec.mode)
    ds = Dataset(spec.url, decode=decode, batch_size=batch, seed=spec.seed)
    per_epoch = len(ds)
    before = (spec.epochs - 1) * per_epoch
    start_at = before + min(math.ceil(spec.warmup * per_epoch / batch), per_epoch // batch) * batch
    window = MeasureWindow(total=before + per_epoch, start_at=start_at,
                           gateway_pid=spec.gateway_pid, wan_pid=spec.wan_pid)  # fmt: skip
    window.t0 = t0
    loader = None
    if decode == "batch" or workers:
        loader = DataLoader(ds, batch_size=batch, num_workers=workers or 0)
    for epoch in range(spec.epochs):
        ds.set_epoch(epoch)
        if decode == "batch":
            assert loader is not None
            for b in loader:
                window.add(len(b), int(b.members[key][:, 1].sum()))
        elif loader is None:
            n = nbytes = 0
            for sample in ds:
                n += 1
                nbytes += len(sample[key])
                if n == batch:
                    window.add(n, nbytes)
                    n = nbytes = 0
            if n:
                window.add(n, nbytes)
        else:
            for blobs in (b[key] for b in loader):
                window.add(len(blobs), sum(map(len, blobs)))
    return window.result()


def run_client(spec: ClientSpec, *, shard_bytes: int = 0) -> dict[str, Any]:
    """The mode's run; its figures in a flat dict (with the spec)."""
    if spec.mode in (FLOOR, FLOOR_STORE):
        result = run_floor(spec, shard_bytes)
    else:
        result = run_loader(spec)
    return {"spec": asdict(spec), **result}


def main() -> None:
    args = json.loads(sys.argv[1])
    shard_bytes = int(args.pop("shard_bytes", 0))
    args["shards"] = tuple(args.get("shards", ()))
    print(json.dumps(run_client(ClientSpec(**args), shard_bytes=shard_bytes)), flush=True)


if __name__ == "__main__":
    main()
