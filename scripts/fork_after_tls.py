"""Many short epochs of the usual sequence over TLS: ``Dataset(https://...)`` (the index read
in a helper thread), then at once a DataLoader that forks two workers. Finds the fork that
lands while a thread that used OpenSSL is ending (`farfeed.store.threads`): the worker's
first TLS connection then waits forever on a lock of OpenSSL's.

    .venv/bin/python scripts/fork_after_tls.py --epochs 80

Prints every tenth epoch; on a stall (no epoch done for --stall-s seconds) prints the stacks
of every process under it (py-spy) and exits with status 3. It uses the test suite's
helpers (a TLS gateway with tokens, a tiny image dataset), so run it from the checkout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.data import packed_images  # noqa: E402
from helpers.hangs import dump_processes_under  # noqa: E402
from helpers.secure import secure_gateway  # noqa: E402

from farfeed.loader import DataLoader, Dataset  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stall-s", type=float, default=30.0, help="seconds without an epoch done")
    args = parser.parse_args()
    last = {"t": time.monotonic(), "epoch": 0}

    def watch() -> None:
        while True:
            time.sleep(1)
            if time.monotonic() - last["t"] > args.stall_s:
                print(dump_processes_under(os.getpid(), f"epoch {last['epoch']} stalled"), flush=True)
                os._exit(3)

    threading.Thread(target=watch, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        packed_images(root / "images", train=120, val=24)
        (Path(tmp) / "tls").mkdir()
        with secure_gateway(root, Path(tmp) / "tls") as site:
            for epoch in range(args.epochs):
                last["epoch"], last["t"] = epoch, time.monotonic()
                ds = Dataset(f"{site.url}/images", token=site.tokens["read"], ca_file=site.ca_file,
                             seed=epoch)  # fmt: skip
                loader = DataLoader(ds, batch_size=16, num_workers=args.workers)
                keys = [k for batch in loader for k in batch["__key__"]]
                assert len(keys) == len(set(keys)) == 120, (epoch, len(keys))
                if epoch % 10 == 0:
                    print(f"epoch {epoch}: {len(keys)} samples", flush=True)
    print(f"{args.epochs} epochs, no stall", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
