"""The gateway's system calls per GB served to the loader, for one or more client trees.

    .venv/bin/python scripts/gateway_syscalls.py /tmp/old/src src

One gateway (`farfeed serve`, 3,000 x 115 KB samples, page cache) runs this tree. For
each source tree given (twice, interleaved), a fresh client process (``PYTHONPATH=TREE``)
reads six epochs of one `farfeed.Dataset(decode="batch")` in-process, while
``perf stat`` counts the gateway's ``sendfile``, ``sendto``, ``poll``, ``epoll_wait``
and ``futex`` calls (syscall tracepoints: needs ``perf`` and root). Prints the counts
per GB delivered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from farfeed.bench.io.data import make_fixed_size_dataset
from farfeed.server.process import GatewayProcess

CALLS = ("sendfile64", "sendto", "poll", "epoll_wait", "futex")
CHILD = r"""
import sys
from farfeed.loader import Dataset
ds = Dataset(sys.argv[1], decode="batch", batch_size=32, seed=0)
n = 0
for epoch in range(6):
    ds.set_epoch(epoch)
    for batch in ds:
        n += batch.nbytes
print(n)
"""


def main() -> None:
    trees = sys.argv[1:]
    if not trees or "-h" in trees or "--help" in trees:
        print(__doc__)
        return
    root = Path("/tmp/farfeed-bench-blocking/root")
    make_fixed_size_dataset(root / "ds", samples=3000, sample_bytes=115_000)
    events = ",".join(f"syscalls:sys_enter_{name}" for name in CALLS)
    with GatewayProcess.start(root) as gw:
        for tree in trees * 2:
            perf = subprocess.Popen(["perf", "stat", "-x", ",", "-e", events, "-p", str(gw.pid)],
                                    stderr=subprocess.PIPE, text=True)  # fmt: skip
            time.sleep(0.5)  # perf attached
            env = dict(os.environ, PYTHONPATH=tree)
            out = subprocess.run([sys.executable, "-c", CHILD, f"{gw.url}/ds"], env=env,
                                 capture_output=True, text=True, check=True)  # fmt: skip
            gb = int(out.stdout.split()[-1]) / 1e9
            perf.send_signal(signal.SIGINT)
            counts = {}
            for line in perf.communicate()[1].splitlines():
                fields = line.split(",")
                if len(fields) > 2 and "sys_enter_" in fields[2] and fields[0].isdigit():
                    counts[fields[2].split("sys_enter_")[1]] = round(int(fields[0]) / gb)
            print(f"{tree}: per GB {counts}", flush=True)


if __name__ == "__main__":
    main()
