"""A/B of the loader's client CPU per GB between two source trees, interleaved in one run.

    .venv/bin/python scripts/ab_receive.py --old /tmp/old/src --rounds 5
    .venv/bin/python scripts/ab_receive.py --old-checksum xxh64 --rounds 5
    .venv/bin/python scripts/ab_receive.py --old /tmp/old/src --side gateway --rounds 5

One gateway (`farfeed serve`, 3,000 x 115 KB samples in the page cache); each round runs,
for each tree and each mode, a fresh child process (``PYTHONPATH=TREE``) that reads
``--epochs`` epochs of ``Dataset(decode="batch")`` in-process or through
``farfeed.loader.DataLoader`` with one worker, and reports the last epoch's CPU-s/GB of its
process tree (itself and its workers: ``getrusage`` of itself and its reaped children), and
the gateway's over all of them. Prints medians and the new/old ratio per round.

``--side gateway``: the trees differ in the gateway instead. Two gateways serve the same
folder, one running the old tree and one this tree; every client runs this tree and
alternates between them.

``--old-checksum xxh64``: the "old" side reads a copy of the dataset whose index holds
xxh64 checksums (as datasets packed before XXH3 do), the "new" side today's pack; with no
``--old`` both sides run this tree, so the difference is the checksum function alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from farfeed.loader import DataLoader, Dataset
def cpu():
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime
url, workers, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ds = Dataset(url, decode="batch", batch_size=32, seed=0)
loader = DataLoader(ds, batch_size=32, num_workers=workers)
out = {}
for epoch in range(epochs):
    ds.set_epoch(epoch)
    n = 0
    t0, c0 = time.monotonic(), cpu()
    for b in loader:
        n += b.nbytes
    out = {"gb": n / 1e9, "cpu": cpu() - c0, "s": time.monotonic() - t0}
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, help="the other tree's src folder (default: this one)")
    parser.add_argument("--old-checksum", choices=["xxh64", "xxh3_64"],
                        help="the old side reads a copy of the dataset hashed with this")  # fmt: skip
    parser.add_argument("--side", choices=["client", "gateway"], default="client",
                        help="which side runs the --old tree (default: the client)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs per child; the last is measured (the in-process arena "
                        "grows to its size over the first two)")
    parser.add_argument("--samples", type=int, default=3000,
                        help="samples of 115 KB in the dataset (3000: 345 MB epochs)")  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path("/tmp/farfeed-bench-blocking"))
    args = parser.parse_args()
    from farfeed.bench.cpu.procstat import process_delta, read_process
    from farfeed.bench.io.data import make_fixed_size_dataset, rehashed_copy
    from farfeed.server.process import GatewayProcess

    root = args.work / "root"
    ds_name = "ds" if args.samples == 3000 else f"ds-{args.samples}"
    ds_dir = make_fixed_size_dataset(root / ds_name, samples=args.samples, sample_bytes=115_000)
    for p in ds_dir.iterdir():
        p.read_bytes()
    new = Path(__file__).resolve().parents[1] / "src"
    old_tree = (args.old or new).resolve()
    trees = {"old": old_tree if args.side == "client" else new, "new": new}
    datasets = {"old": ds_name, "new": ds_name}
    if args.old_checksum:
        datasets["old"] = f"{ds_name}-{args.old_checksum}"
        rehashed_copy(ds_dir, root / datasets["old"], args.old_checksum)
    results: dict[tuple[str | int, ...], list[float]] = {}
    with contextlib.ExitStack() as stack:
        gateways = {"new": stack.enter_context(GatewayProcess.start(root))}
        gateways["old"] = (
            stack.enter_context(GatewayProcess.start(root, env={"PYTHONPATH": str(old_tree)}))
            if args.side == "gateway" else gateways["new"]
        )  # fmt: skip
        for r in range(args.rounds):
            for workers in (0, 1):
                for name, tree in trees.items():
                    gw = gateways[name]
                    env = {**os.environ, "PYTHONPATH": str(tree)}
                    gw0 = read_process(gw.pid or 0)
                    line = subprocess.run(
                        [sys.executable, "-c", CHILD, f"{gw.url}/{datasets[name]}", str(workers),
                         str(args.epochs)],
                        env=env, capture_output=True, text=True, check=True,
                    ).stdout.strip().splitlines()[-1]  # fmt: skip
                    got = json.loads(line)
                    value = got["cpu"] / got["gb"]
                    gw1 = read_process(gw.pid or 0)
                    assert gw0 is not None and gw1 is not None, "the gateway exited"
                    gateway = process_delta(gw0, gw1) / (args.epochs * got["gb"])  # every epoch
                    results.setdefault((name, workers), []).append(value)
                    results.setdefault((name, workers, "gateway"), []).append(gateway)
                    print(f"round {r + 1} workers={workers} {name}: {value:.2f} CPU-s/GB "
                          f"(gateway {gateway:.2f}), {got['gb'] * 1e3 / got['s']:.0f} MB/s",
                          flush=True)  # fmt: skip
    for workers in (0, 1):
        old, new_ = results[("old", workers)], results[("new", workers)]
        ratios = [n / o for n, o in zip(new_, old, strict=True)]
        print(f"workers={workers}: old {statistics.median(old):.2f}, new {statistics.median(new_):.2f} "
              f"CPU-s/GB; new/old per round median {statistics.median(ratios):.2f} "
              f"({', '.join(f'{x:.2f}' for x in ratios)})")  # fmt: skip
        old, new_ = results[("old", workers, "gateway")], results[("new", workers, "gateway")]
        ratios = [n / o for n, o in zip(new_, old, strict=True)]
        print(f"  gateway (every epoch): old {statistics.median(old):.2f}, new "
              f"{statistics.median(new_):.2f} CPU-s/GB; new/old per round median "
              f"{statistics.median(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)})")  # fmt: skip


if __name__ == "__main__":
    main()
