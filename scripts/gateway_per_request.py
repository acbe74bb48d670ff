"""What one batch-get request and one range cost the gateway, in CPU time.

    .venv/bin/python scripts/gateway_per_request.py

One gateway (`farfeed serve`, the 3,000 x 115 KB dataset of the other scripts, page
cache); from this process, ``--requests`` batch-gets of 1 range of 1 KB, then of 32 and
64 ranges of 115 KB, one after the other on one keep-alive connection. Prints the
gateway process's user and system CPU per request (``/proc/PID/stat``), so the fixed
cost of a request and the cost of each range can be told apart, then the same per thread
(``/proc/PID/task/*/stat``: the event loop's thread first, then the worker threads that
check paths and send the frames).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from farfeed.bench.io.data import make_fixed_size_dataset
from farfeed.format import SampleIndex
from farfeed.server.process import GatewayProcess
from farfeed.store import open_store
from farfeed.store.base import ByteRange

TICK = os.sysconf("SC_CLK_TCK")


def user_system(stat: str) -> tuple[float, float]:
    """User and system CPU seconds from a ``/proc/.../stat`` file."""
    fields = open(stat).read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def cpu(pid: int) -> tuple[float, float]:
    return user_system(f"/proc/{pid}/stat")


def threads(pid: int) -> dict[int, tuple[float, float]]:
    """User and system CPU seconds of each live thread of ``pid``."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(tid)] = user_system(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            continue  # the thread ended
    return out


async def measure(url: str, pid: int, ranges: list[ByteRange], requests: int) -> str:
    async with open_store(url) as store:
        outs = [memoryview(bytearray(r.length)) for r in ranges]
        await store.read_into(ranges, outs)  # the connection and the path checks, once
        (u0, s0), t0, before = cpu(pid), time.monotonic(), threads(pid)
        for _ in range(requests):
            await store.read_into(ranges, outs)
        (u1, s1), wall, after = cpu(pid), time.monotonic() - t0, threads(pid)
    lines = [f"{len(ranges)} x {ranges[0].length:,} B: gateway user {(u1 - u0) / requests * 1e3:.2f} ms, "
             f"system {(s1 - s0) / requests * 1e3:.2f} ms per request ({wall / requests * 1e3:.2f} ms wall)"]  # fmt: skip
    for tid, (u, s) in sorted(after.items()):
        bu, bs = before.get(tid, (0.0, 0.0))
        if u - bu + s - bs > 0:
            name = "event loop" if tid == pid else f"thread {tid}"
            lines.append(f"    {name}: user {(u - bu) / requests * 1e3:.2f} ms, system {(s - bs) / requests * 1e3:.2f} ms")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/farfeed-bench-blocking"))
    args = parser.parse_args()
    root = args.work / "root"
    ds = make_fixed_size_dataset(root / "ds", samples=3000, sample_bytes=115_000)
    index = SampleIndex.load(ds)
    spans = [ByteRange(*index.span(i)) for i in range(0, 3000, 37)][:64]  # spread over shards
    with GatewayProcess.start(root) as gw:
        url = f"{gw.url}/ds"
        for ranges in ([ByteRange(spans[0].path, spans[0].offset, 1000)], spans[:32], spans):
            print(asyncio.run(measure(url, gw.pid or 0, ranges, args.requests)), flush=True)


if __name__ == "__main__":
    main()
