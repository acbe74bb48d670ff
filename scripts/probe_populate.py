"""What a forked DataLoader worker pays to map its arena's pages: faults, or one madvise.

    .venv/bin/python scripts/probe_populate.py --mib 128 --rounds 3

The parent maps an anonymous shared region (as `farfeed.loader.arena.Arenas` does) and
touches every page, so the pages exist. Each round forks a child that writes one byte per
4 KiB page: once page by page (a minor fault each), once after one
``madvise(MADV_POPULATE_WRITE)`` over the region (Linux >= 5.14). Prints the child's CPU
per GB of region.
"""

from __future__ import annotations

import argparse
import mmap
import os
import resource

import numpy as np

MADV_POPULATE_WRITE = 23  # linux/mman.h; Python 3.11's mmap module does not name it


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = args.mib * 2**20
    region = mmap.mmap(-1, size)
    pages = np.frombuffer(region, dtype=np.uint8)
    pages[::4096] = 1
    for _ in range(args.rounds):
        for way in ("faults", "populate"):
            pid = os.fork()
            if pid == 0:
                start = cpu()
                if way == "populate":
                    region.madvise(MADV_POPULATE_WRITE, 0, size)
                pages[::4096] = 2
                spent = cpu() - start
                print(f"{way:>8}: {spent * 1e3:5.1f} ms for {args.mib} MiB, "
                      f"{spent / (size / 1e9):.3f} CPU-s per GB of region", flush=True)
                os._exit(0)
            os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
