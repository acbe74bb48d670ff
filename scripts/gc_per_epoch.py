"""What Python's garbage collector costs per epoch, in the training process and its workers.

    .venv/bin/python scripts/gc_per_epoch.py --workers 1 --samples 26000
    .venv/bin/python scripts/gc_per_epoch.py --workers 0 --samples 26000

One gateway (`farfeed serve`, ``--samples`` x 115 KB samples, page cache); ``--epochs``
epochs of `farfeed.Dataset(decode="batch")` through one `farfeed.loader.DataLoader`
(``set_epoch`` between). A ``gc.callbacks`` hook, inherited by the forked workers, times
every collection in CPU time (``time.thread_time``) and counts the minor page faults of
the thread during the full (generation 2) ones: a page fault there is a page of the heap
the collection wrote to for the first time in this process (in a worker: a page copied
from the training process). Each full collection is printed as it ends, then each
epoch's totals per generation, in this process.
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import resource
import sys
import threading
import time
from pathlib import Path

from farfeed.bench.io.data import make_fixed_size_dataset
from farfeed.loader import DataLoader, Dataset
from farfeed.server.process import GatewayProcess

PARENT = os.getpid()
SPENT: collections.Counter[int] = collections.Counter()  # generation -> CPU seconds
COUNT: collections.Counter[int] = collections.Counter()
_started: dict[int, tuple[float, int]] = {}


def on_gc(phase: str, info: dict[str, int]) -> None:
    me = threading.get_ident()
    if phase == "start":
        _started[me] = (time.thread_time(), resource.getrusage(resource.RUSAGE_THREAD).ru_minflt)
        return
    t0, f0 = _started.pop(me, (time.thread_time(), 0))
    gen, spent = info["generation"], time.thread_time() - t0
    SPENT[gen] += spent
    COUNT[gen] += 1
    if gen == 2:
        faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - f0
        who = "training process" if os.getpid() == PARENT else f"worker {os.getpid()}"
        print(f"  full collection in the {who}: {spent * 1e3:.0f} ms, {faults:,} page faults, "
              f"{len(gc.get_objects()):,} objects tracked", file=sys.stderr, flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=3000,
                        help="115 KB samples in the dataset (26,000: a 3 GB epoch)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--work", type=Path, default=Path("/tmp/farfeed-bench-blocking"))
    args = parser.parse_args()
    root = args.work / "root"
    name = "ds" if args.samples == 3000 else f"ds{args.samples}"
    make_fixed_size_dataset(root / name, samples=args.samples, sample_bytes=115_000)
    gc.callbacks.append(on_gc)
    with GatewayProcess.start(root) as gw:
        ds = Dataset(f"{gw.url}/{name}", decode="batch", batch_size=args.batch_size, seed=0)
        loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.workers)
        for epoch in range(args.epochs):
            ds.set_epoch(epoch)
            SPENT.clear()
            COUNT.clear()
            nbytes = sum(b.nbytes for b in loader)
            gb = nbytes / 1e9
            here = ", ".join(f"gen {g}: {COUNT[g]} x, {SPENT[g] * 1e3:.0f} ms ({SPENT[g] / gb:.3f} "
                             "CPU-s/GB)" for g in sorted(COUNT)) or "none"  # fmt: skip
            print(f"epoch {epoch}: {gb:.2f} GB; collections in this process: {here}", flush=True)


if __name__ == "__main__":
    main()
