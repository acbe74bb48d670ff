"""`farfeed bench cpu`: throughput and CPU-seconds per GB of each client mode, against the floor.

    farfeed bench cpu --links none,tokyo-fukuoka --repeats 3 --out bench-out/cpu/results.json

Storage site: a `GatewayProcess` serving a dataset of fixed-size samples (made once in
the work folder, read once so it sits in the page cache). Between: per link, a
`WanProcess` (its CPU is the emulator's, neither site's), or nothing ("none"). GPU site:
each client run in a fresh process (`farfeed.bench.cpu.client`), which reads its own
tree's, the gateway's and the emulator's CPU at the start and end of its steady-state
window. Runs are interleaved (repeat, link, mode) so slow spells of a shared machine
spread over all modes; figures are medians.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from farfeed.bench.cpu.config import (
    CURL,
    FLOOR,
    FLOOR_STORE,
    LINE_RATE,
    CpuBenchConfig,
    cpu_link,
)
from farfeed.bench.cpu.floor import curl_path, run_curl
from farfeed.bench.cpu.report import cpu_markdown_table, summarise
from farfeed.bench.io.data import make_fixed_size_dataset
from farfeed.errors import FarfeedError

DATASET_META = "dataset.json"


def prepare_dataset(cfg: CpuBenchConfig) -> tuple[Path, dict[str, Any]]:
    """The dataset folder (made, or reused when it matches) under ``workdir/root``, read
    once into the page cache; and its description."""
    name = f"s{cfg.sample_count}x{cfg.sample_bytes}"
    folder = make_fixed_size_dataset(
        cfg.workdir / "root" / name, samples=cfg.sample_count, sample_bytes=cfg.sample_bytes
    )
    meta = json.loads((folder / DATASET_META).read_text())
    buf = bytearray(8 << 20)
    for path in sorted(folder.iterdir()):
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass
    info = {
        "name": name,
        "samples": meta["samples"],
        "sample_bytes": cfg.sample_bytes,
        "bytes": meta["samples"] * cfg.sample_bytes,
        "shards": list(meta["shards"]),
        "shard_bytes": sum(meta["shard_bytes"]),
    }
    return folder, info


def run_client_process(args: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """One client run in a fresh Python; its JSON result, or FarfeedError with its stderr."""
    cmd = [sys.executable, "-m", "farfeed.bench.cpu.client", json.dumps(args)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise FarfeedError(f"{args['mode']} run did not finish within {timeout:.0f} s") from exc
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise FarfeedError(f"{args['mode']} run failed: {out.stderr.strip()[-1500:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _per_gb(cpu: float | None, nbytes: int) -> float | None:
    return None if cpu is None or nbytes <= 0 else cpu / (nbytes / 1e9)


def _run_row(
    link: str, mode: str, repeat: int, result: dict[str, Any], expected: int
) -> dict[str, Any]:
    seconds, nbytes = max(result["window_s"], 1e-9), result["window_bytes"]
    return {
        "link": link,
        "mode": mode,
        "repeat": repeat,
        "window": result["window"],
        "total_bytes": result["total_bytes"],
        "expected_bytes": expected,
        "complete": result["total_bytes"] == expected and result["window"] != "incomplete",
        "window_bytes": nbytes,
        "window_s": result["window_s"],
        "startup_s": result["startup_s"],
        "process_s": result["process_s"],
        "mb_s": nbytes / seconds / 1e6,
        "client_cpu_s": result["client_cpu_s"],
        "gateway_cpu_s": result["gateway_cpu_s"],
        "wan_cpu_s": result["wan_cpu_s"],
        "client_cpu_per_gb": _per_gb(result["client_cpu_s"], nbytes),
        "gateway_cpu_per_gb": _per_gb(result["gateway_cpu_s"], nbytes),
        "wan_cpu_per_gb": _per_gb(result["wan_cpu_s"], nbytes),
        "client_cores": result["client_cpu_s"] / seconds,
        "gateway_cores": result["gateway_cpu_s"] / seconds,
    }


def _one_run(
    cfg: CpuBenchConfig,
    data: dict[str, Any],
    mode: str,
    url: str,
    gateway_pid: int,
    wan_pid: int | None,
    repeat: int,
) -> dict[str, Any]:
    """One client run of ``mode`` against ``url``: curl here, the others in a fresh Python."""
    shards = data["shards"] * cfg.floor_passes
    if mode == CURL:
        return run_curl(url, shards, gateway_pid=gateway_pid, wan_pid=wan_pid,
                        timeout=cfg.timeout)  # fmt: skip
    args = {"mode": mode, "url": url, "gateway_pid": gateway_pid, "wan_pid": wan_pid,
            "warmup": cfg.warmup, "batch_size": cfg.batch_size, "shards": shards,
            "epochs": cfg.epochs,
            "connections": 1 if mode == FLOOR_STORE else cfg.connections, "seed": repeat,
            "shard_bytes": data["shard_bytes"] * cfg.floor_passes}  # fmt: skip
    return run_client_process(args, timeout=cfg.timeout)


def _progress(row: dict[str, Any]) -> str:
    def per_gb(key: str) -> str:  # None when the window held no bytes
        return "-" if row[key] is None else f"{row[key]:.2f}"

    wan = row["wan_cpu_per_gb"]
    return (
        f"    {row['mb_s']:.0f} MB/s, CPU-s/GB client {per_gb('client_cpu_per_gb')}, "
        f"gateway {per_gb('gateway_cpu_per_gb')}"
        + ("" if wan is None else f", wan {wan:.2f}")
        + ("" if row["complete"] else "  (INCOMPLETE: not every byte arrived)")
    )


def plan_modes(cfg: CpuBenchConfig) -> list[str]:
    """The client modes in run order: the floor (and curl when asked and on PATH) first."""
    modes = list(cfg.modes)
    if FLOOR in modes and cfg.curl and curl_path() is not None:
        modes.insert(modes.index(FLOOR) + 1, CURL)
    return modes


def run_cpu_bench(
    cfg: CpuBenchConfig, *, command: str = "", say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Every run of the configuration; the report: per (link, mode) medians, "x floor",
    "x storing floor" and cores at 12.5 GB/s (``rows``), every run (``runs``), the machine
    and its load."""
    from farfeed.server.process import GatewayProcess
    from farfeed.wan import WanProcess

    started = time.time()
    load_before = os.getloadavg()
    say(f"dataset: {cfg.sample_count:,} samples x {cfg.sample_bytes:,} B in {cfg.workdir}/root")
    folder, data = prepare_dataset(cfg)
    say(f"  {data['bytes'] / 1e6:.0f} MB in {len(data['shards'])} shards, read into the page cache")
    modes = plan_modes(cfg)
    runs: list[dict[str, Any]] = []
    total, count = cfg.repeats * len(cfg.links) * len(modes), 0
    with ExitStack() as stack:
        gateway = stack.enter_context(GatewayProcess.start(folder.parent))
        assert gateway.pid is not None
        host, port = gateway.url.split("//", 1)[1].rsplit(":", 1)
        wans: dict[str, WanProcess] = {}
        for link in cfg.links:
            emulated = cpu_link(link)
            if emulated is not None:
                started_wan = WanProcess.start(upstream=(host, int(port)), link=emulated)
                wans[link] = stack.enter_context(started_wan)
        for repeat in range(cfg.repeats):
            for link in cfg.links:
                wan = wans.get(link)
                url = f"{gateway.url}/{data['name']}"
                url = wan.url_for(url) if wan is not None else url
                for mode in modes:
                    count += 1
                    say(f"[{count}/{total}] repeat {repeat + 1}/{cfg.repeats}, link {link}, {mode}")
                    wan_pid = wan.pid if wan is not None else None
                    t0 = time.monotonic()
                    result = _one_run(cfg, data, mode, url, gateway.pid, wan_pid, repeat)
                    result["process_s"] = time.monotonic() - t0
                    floor = mode in (FLOOR, FLOOR_STORE, CURL)
                    expected = (data["shard_bytes"] * cfg.floor_passes if floor
                                else data["bytes"] * cfg.epochs)  # fmt: skip
                    runs.append(_run_row(link, mode, repeat, result, expected))
                    say(_progress(runs[-1]))
    return {
        "command": command,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_before": list(load_before),
            "loadavg_after": list(os.getloadavg()),
        },
        "config": cfg.to_dict(),
        "dataset": data,
        "links": {name: (lk.to_dict() if (lk := cpu_link(name)) else None) for name in cfg.links},
        "line_rate_gb_s": LINE_RATE / 1e9,
        "seconds": time.time() - started,
        "rows": summarise(runs, links=cfg.links, modes=modes),
        "runs": runs,
    }


def write_cpu_report(report: dict[str, Any], path: Path) -> Path:
    """The report as JSON at ``path`` and its table as Markdown beside it (``.md``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    path.with_suffix(".md").write_text(cpu_markdown_table(report))
    return path.with_suffix(".md")
