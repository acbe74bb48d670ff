"""Where an in-process ``decode="batch"`` GB goes, thread by thread.

    .venv/bin/python scripts/cpu_by_thread.py --epochs 6
    .venv/bin/python scripts/cpu_by_thread.py --epochs 6 --checksum xxh64   # an older pack
    .venv/bin/python scripts/cpu_by_thread.py --epochs 3 --samples 26000 --batch-size 32  # 3 GB
    .venv/bin/python scripts/cpu_by_thread.py --epochs 3 --samples 26000 --batch-size 32 --connections 1
    perf record -F 999 -o perf.data -- .venv/bin/python scripts/cpu_by_thread.py --tids ...

One gateway (`farfeed serve`, 3,000 x 115 KB samples, page cache); after one warm-up
epoch, ``--epochs`` epochs of one `farfeed.Dataset(decode="batch")` in this process
(``set_epoch`` between). A sampler thread reads every thread's user and system time from
``/proc/self/task`` every 50 ms (so threads that end are counted too) and the totals are
printed per thread name, in CPU-s per GB delivered.
"""

from __future__ import annotations

import argparse
import collections
import os
import threading
import time
from pathlib import Path

from farfeed.bench.io.data import make_fixed_size_dataset, rehashed_copy
from farfeed.checksum import CHECKSUMS, DEFAULT_CHECKSUM
from farfeed.loader import Dataset
from farfeed.server.process import GatewayProcess

TICK = os.sysconf("SC_CLK_TCK")
SEEN: dict[int, tuple[float, float]] = {}
NAMES: dict[int, str] = {}


def sample() -> None:
    for t in threading.enumerate():
        if t.native_id is not None:
            NAMES[t.native_id] = t.name
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        SEEN[int(tid)] = (int(fields[11]) / TICK, int(fields[12]) / TICK)


def totals() -> collections.Counter[str]:
    sample()
    out: collections.Counter[str] = collections.Counter()
    for tid, (user, system) in SEEN.items():
        out[f"{NAMES.get(tid, '?')} user"] += user
        out[f"{NAMES.get(tid, '?')} system"] += system
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--samples", type=int, default=3000,
                        help="115 KB samples in the dataset (26,000: a 3 GB epoch)")
    parser.add_argument("--batch-size", type=int, default=40)
    parser.add_argument("--connections", type=int, default=64,
                        help="the store's most connections (StoreOptions.connections)")
    parser.add_argument("--tids", action="store_true",
                        help="also print each thread name's thread ids (to split a `perf "
                        "record` of this process by thread: `perf script -F tid,sym`)")  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path("/tmp/farfeed-bench-blocking"))
    parser.add_argument("--checksum", choices=CHECKSUMS, default=DEFAULT_CHECKSUM,
                        help="read a copy of the dataset hashed with this (default: what "
                        "new packs use)")  # fmt: skip
    args = parser.parse_args()
    root = args.work / "root"
    name = "ds" if args.samples == 3000 else f"ds{args.samples}"
    make_fixed_size_dataset(root / name, samples=args.samples, sample_bytes=115_000)
    if args.checksum != DEFAULT_CHECKSUM:
        rehashed_copy(root / name, root / f"{name}-{args.checksum}", args.checksum)
        name = f"{name}-{args.checksum}"

    def sampler() -> None:
        while True:
            sample()
            time.sleep(0.05)

    threading.Thread(target=sampler, daemon=True, name="sampler").start()
    with GatewayProcess.start(root) as gw:
        url = f"{gw.url}/{name}"
        ds = Dataset(url, decode="batch", batch_size=args.batch_size, seed=0,
                     store_options={"connections": args.connections})
        for _ in ds:  # one warm-up epoch; then set_epoch, as a training job does
            pass
        before, n, t0 = totals(), 0, time.monotonic()
        for epoch in range(args.epochs):
            ds.set_epoch(epoch + 1)
            for batch in ds:
                n += batch.nbytes
        after = totals()
    gb = n / 1e9
    if args.tids:
        for thread in sorted(set(NAMES.values())):
            print(f"{thread}: {','.join(str(t) for t, k in NAMES.items() if k == thread)}")
    print(f"{gb:.2f} GB at {n / 1e6 / (time.monotonic() - t0):.0f} MB/s; CPU-s/GB by thread:")
    for name, value in sorted(((k, after[k] - before.get(k, 0)) for k in after),
                              key=lambda kv: -kv[1]):  # fmt: skip
        if value > 0:
            print(f"  {name}: {value / gb:.2f}")


if __name__ == "__main__":
    main()
