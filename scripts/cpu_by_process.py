"""Which process pays for a GB delivered through one DataLoader worker (`decode="batch"`)?

    .venv/bin/python scripts/cpu_by_process.py --repeats 3 [--batch-size 256] [--samples 26000]

One gateway (`farfeed serve`, ``--samples`` x 115 KB samples, page cache); each repeat reads two
epochs through `farfeed.loader.DataLoader(num_workers=1)` and prints the second epoch's
CPU-s/GB of the training process (``getrusage(RUSAGE_SELF)``) and of its worker
(``RUSAGE_CHILDREN``: the worker is reaped at the end of the epoch, so its figure also
holds its start: fork, iterator, first connections; read it as an upper bound).
"""

from __future__ import annotations

import argparse
import resource
from pathlib import Path

from farfeed.bench.io.data import make_fixed_size_dataset
from farfeed.loader import DataLoader, Dataset
from farfeed.server.process import GatewayProcess


def usage(who: int) -> tuple[float, float]:
    r = resource.getrusage(who)
    return r.ru_utime, r.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=3000,
                        help="115 KB samples in the dataset (26000: a 3 GB epoch)")  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path("/tmp/farfeed-bench-blocking"))
    args = parser.parse_args()
    root = args.work / "root"
    name = "ds" if args.samples == 3000 else f"ds-{args.samples}"
    make_fixed_size_dataset(root / name, samples=args.samples, sample_bytes=115_000)
    with GatewayProcess.start(root) as gw:
        for rep in range(args.repeats):
            ds = Dataset(f"{gw.url}/{name}", decode="batch", batch_size=args.batch_size, seed=rep)
            loader = DataLoader(ds, batch_size=args.batch_size, num_workers=1)
            for epoch in range(2):
                ds.set_epoch(epoch)
                me, kids = usage(resource.RUSAGE_SELF), usage(resource.RUSAGE_CHILDREN)
                n = sum(b.nbytes for b in loader)
            me2, kids2 = usage(resource.RUSAGE_SELF), usage(resource.RUSAGE_CHILDREN)
            gb = n / 1e9
            print(f"training process: user {(me2[0] - me[0]) / gb:.2f}, system "
                  f"{(me2[1] - me[1]) / gb:.2f}; worker (with its start): user "
                  f"{(kids2[0] - kids[0]) / gb:.2f}, system {(kids2[1] - kids[1]) / gb:.2f} "
                  "CPU-s/GB")  # fmt: skip


if __name__ == "__main__":
    main()
