"""Page faults per epoch in the training process and in its DataLoader workers.

    .venv/bin/python scripts/faults_per_epoch.py --workers 0
    .venv/bin/python scripts/faults_per_epoch.py --workers 1

One gateway (`farfeed serve`, 3,000 x 115 KB samples, page cache); ``--epochs`` epochs of
`farfeed.Dataset(decode="batch")` through one `farfeed.loader.DataLoader` (``set_epoch``
between, as a training job does). Prints each epoch's minor page faults (``getrusage``) of
this process and of its reaped workers, and the MiB they stand for (4 KiB pages): memory
touched for the first time in that epoch (fresh pages, or pages a new worker maps).
"""

from __future__ import annotations

import argparse
import resource
from pathlib import Path

from farfeed.bench.io.data import make_fixed_size_dataset
from farfeed.loader import DataLoader, Dataset
from farfeed.server.process import GatewayProcess


def faults() -> tuple[int, int]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    return own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--work", type=Path, default=Path("/tmp/farfeed-bench-blocking"))
    args = parser.parse_args()
    root = args.work / "root"
    make_fixed_size_dataset(root / "ds", samples=3000, sample_bytes=115_000)
    with GatewayProcess.start(root) as gw:
        ds = Dataset(f"{gw.url}/ds", decode="batch", batch_size=args.batch_size, seed=0)
        loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.workers)
        for epoch in range(args.epochs):
            ds.set_epoch(epoch)
            (own0, kids0), n = faults(), 0
            for batch in loader:
                n += batch.nbytes
            own1, kids1 = faults()
            own, kids = own1 - own0, kids1 - kids0
            print(f"epoch {epoch}: {n / 1e6:.0f} MB; minor faults: this process {own:,} "
                  f"({own * 4 / 1024:.0f} MiB), workers {kids:,} ({kids * 4 / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
