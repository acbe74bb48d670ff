"""`farfeed bench cpu`: MB/s and CPU-seconds per GB of each client mode, against the kernel's floor.

    farfeed bench cpu --links none,tokyo-fukuoka --repeats 3 --out bench-out/cpu/results.json

>>> from farfeed.bench.cpu import CpuBenchConfig, run_cpu_bench
>>> report = run_cpu_bench(CpuBenchConfig.quick_defaults(links=("none",)))
>>> report["rows"][0]["client_cpu_per_gb"]

Modules in the order a run uses them: `config` (what to run), `harness` (data, gateway,
emulator, the runs), `client` (one run in its own process), `floor` (the plain socket
reader and curl), `procstat` (CPU of process trees from /proc), `report` (medians, tables).
"""

from farfeed.bench.cpu.config import DEFAULT_MODES, NO_LINK, CpuBenchConfig
from farfeed.bench.cpu.harness import run_cpu_bench, write_cpu_report
from farfeed.bench.cpu.report import cpu_markdown_table, rich_table

__all__ = [
    "DEFAULT_MODES",
    "NO_LINK",
    "CpuBenchConfig",
    "cpu_markdown_table",
    "rich_table",
    "run_cpu_bench",
    "write_cpu_report",
]
