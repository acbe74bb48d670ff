"""`farfeed bench io`: the loader against an emulated accelerator, local and across emulated distance.

    farfeed bench io --rtt-ms 0,15,50,100 --demand 0.9 --scale 0.1 --json bench-out/io.json

Storage site: a `GatewayProcess` serving a synthetic dataset of fixed-size samples
(``--paths`` adds the gateway in front of an S3 store, and the loader reading the S3
store directly: `farfeed.bench.io.sites`). Between: a `WanProcess` (farfeed wan) with the
RTT under test and a bandwidth set so the accelerator's demand is ``demand`` x the link.
GPU site: each trial runs in its own process (`farfeed.bench.io.trial`): farfeed's
Dataset + DataLoader, or the baseline (a map-style Dataset with one HTTP GET per sample,
against the disk gateway). RTT 0 is the local reference for AU relative.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from farfeed.bench.io.accelerator import PROFILES, Profile
from farfeed.bench.io.data import make_fixed_size_dataset
from farfeed.bench.io.sites import LABELS, check_paths, storage_sites
from farfeed.bench.io.trial import TrialSpec
from farfeed.errors import ConfigError, FarfeedError

DATASET = "io"


@dataclass(frozen=True)
class IoBenchConfig:
    """Everything one `farfeed bench io` run does (saved beside its figures)."""

    rtts_ms: tuple[float, ...] = (0.0, 15.0, 50.0, 100.0)
    demand: float = 0.9  # accelerator demand as a fraction of the link bandwidth
    scale: float = 0.1  # shrinks the profile's demand (and so the link) to fit the machine
    profile: str = "resnet50"
    batches: int = 100  # batches per trial, warm-up included
    warmup: int = 20
    workers: int = 2
    #: farfeed's output: "bytes" (dicts of bytes, torch's collate) or "batch" (Batch objects)
    decode: str = "bytes"
    baseline: bool = True
    baseline_workers: int = 8
    memory_budget: int = 512 * 2**20
    window: int = 4 * 2**20  # emulated TCP window per connection, bytes
    overload: float = 2.0  # demand / link for the saturation rows (0: skip them)
    overload_rtts_ms: tuple[float, ...] = (15.0, 100.0)
    repeats: int = 1
    max_seconds: float = 40.0
    work: Path = field(default=Path("bench-out/io"))
    paths: tuple[str, ...] = ("gateway",)  # storage paths: gateway, gateway-s3, s3
    cache_mib: int = 1024  # gateway-s3: block cache
    block_mib: float = 8.0  # gateway-s3: bytes per store read

    def __post_init__(self) -> None:
        check_paths(self.paths)
        if self.profile not in PROFILES:
            raise ConfigError(f"unknown profile {self.profile!r}; known: {', '.join(PROFILES)}")
        if not 0 < self.demand <= 1:
            raise ConfigError(f"--demand must be in (0, 1], got {self.demand!r}")
        if self.overload != 0 and self.overload <= 1:
            raise ConfigError(f"--overload must be > 1 (or 0 to skip), got {self.overload!r}")
        if self.batches <= self.warmup or self.warmup < 1 or self.repeats < 1:
            raise ConfigError(
                f"need --batches > --warmup >= 1 and --repeats >= 1, got {self.batches!r}, "
                f"{self.warmup!r}, {self.repeats!r}"
            )
        if self.workers < 1 or self.baseline_workers < 1 or any(r < 0 for r in self.rtts_ms):
            raise ConfigError(
                f"need workers >= 1 and RTTs >= 0, got {self.workers!r}, {self.rtts_ms!r}"
            )
        if self.decode not in ("bytes", "batch"):
            raise ConfigError(f'decode must be "bytes" or "batch", got {self.decode!r}')
        if 0.0 not in self.rtts_ms:
            raise ConfigError(
                f"--rtt-ms must include 0 (the local reference), got {self.rtts_ms!r}"
            )

    @property
    def accelerator(self) -> Profile:
        return PROFILES[self.profile].scaled(self.scale)

    @property
    def link_bandwidth(self) -> float:
        """Bytes/s of the emulated link: the demand is ``demand`` x this."""
        return self.accelerator.demand / self.demand


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) a process used so far; 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def run_trial_process(spec: TrialSpec, *, timeout: float) -> dict[str, Any]:
    """Run one trial in a fresh Python; its JSON result, or FarfeedError with its stderr."""
    cmd = [sys.executable, "-m", "farfeed.bench.io.trial", json.dumps(asdict(spec))]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise FarfeedError(f"{spec.loader} trial did not finish within {timeout:.0f} s") from exc
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise FarfeedError(f"{spec.loader} trial failed: {out.stderr.strip()[-1500:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


class TrialRunner:
    """Trials one after another in one long-lived process (``trial --serve``): torch and the
    loaders are imported once, not once per trial (seconds each on 2 cores). Peak memory is
    then the process's over all its trials so far; `run_trial_process` keeps them apart.

        with TrialRunner() as runner:
            result = runner.run(spec, timeout=120)
    """

    def __init__(self) -> None:
        import tempfile

        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "farfeed.bench.io.trial", "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
        )  # fmt: skip

    def __enter__(self) -> TrialRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, spec: TrialSpec, *, timeout: float) -> dict[str, Any]:
        """One trial; its JSON result, or FarfeedError naming it (with the child's error)."""
        import select

        from farfeed.bench.io.trial import RESULT_MARK

        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(asdict(spec)) + "\n")
        self._proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._proc.stdout], [], [], max(0.0, left))
            if not ready:
                self.close()
                raise FarfeedError(f"{spec.loader} trial did not finish within {timeout:.0f} s")
            line = self._proc.stdout.readline()
            if not line:
                raise FarfeedError(f"{spec.loader} trial runner died: {self._tail()}")
            if line.startswith(RESULT_MARK):
                result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
                if "error" in result:
                    raise FarfeedError(f"{spec.loader} trial failed: {result['error'][-1500:]}")
                return result

    def _tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-1500:].strip()

    def close(self) -> None:
        """End the runner (its stdin closes; killed if it does not exit in 10 s)."""
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()


def run_behind_link(
    gateway: Any,
    link: Any,
    make_spec: Callable[[str], TrialSpec],
    *,
    timeout: float,
    runner: TrialRunner | None = None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Start a `farfeed wan` with ``link`` in front of ``gateway``, run the trial
    ``make_spec(the gateway's URL through the link)`` (in ``runner``, or in a process of
    its own), stop the emulator; (the trial's result, cores used by the loader, the
    gateway and the emulator while it ran)."""
    from farfeed.wan import WanProcess

    host, port = gateway.url.split("//", 1)[1].rsplit(":", 1)
    wan = WanProcess.start(upstream=(host, int(port)), link=link)
    try:
        spec = make_spec(wan.url_for(gateway.url))
        before = (time.monotonic(), process_cpu(gateway.pid), process_cpu(wan.pid))
        if runner is not None:
            result = runner.run(spec, timeout=timeout)
        else:
            result = run_trial_process(spec, timeout=timeout)
        elapsed = time.monotonic() - before[0]
        cpu = {
            "loader": result["loader_cpu_s"] / elapsed,
            "gateway": (process_cpu(gateway.pid) - before[1]) / elapsed,
            "wan": (process_cpu(wan.pid) - before[2]) / elapsed,
            "elapsed_s": elapsed,
        }
    finally:
        wan.stop()
    return result, cpu


def _row(
    cfg: IoBenchConfig,
    loader: str,
    rtt_ms: float,
    demand: float,
    result: dict[str, Any],
    cpu: dict[str, float],
    *,
    path: str = "gateway",
    store_requests: int | None = None,
) -> dict[str, Any]:
    wall = max(result["wall_s"], 1e-9)
    delivered = result["batches"] * cfg.accelerator.batch_size  # warm-up included, as the CPU
    gb = max(delivered * cfg.accelerator.sample_bytes / 1e9, 1e-12)
    return {
        "loader": loader,
        "decode": cfg.decode if loader == "farfeed" else "bytes",
        "path": path,
        "store_requests": store_requests,
        "store_requests_per_1k": None if store_requests is None else store_requests * 1000 / max(delivered, 1),
        "gateway_cpu_s_per_gb": cpu["gateway"] * cpu["elapsed_s"] / gb,
        "loader_cpu_s_per_gb": cpu["loader"] * cpu["elapsed_s"] / gb,
        "rtt_ms": rtt_ms,
        "demand": demand,
        "link_mb_s": cfg.link_bandwidth / 1e6,
        "au": result["au"],
        "samples_per_s": result["samples_per_s"],
        "mb_per_s": result["bytes_per_s"] / 1e6,
        "link_utilisation": result["bytes_per_s"] / cfg.link_bandwidth,
        "stall_s": result["stall_s"],
        "measured_s": wall,
        "batches": result["batches"],
        "first_batch_s": result["first_batch_s"],
        "peak_rss_mb": result["peak_rss_mb"],
        "peak_anon_mb": result["peak_anon_mb"],
        "ready_anon_mb": result["ready_anon_mb"],
        # what the data path added: fetched bytes, worker heaps, batches in transit
        "data_mb": result["peak_anon_mb"] - result["ready_anon_mb"],
        "peak_held_mb": result["peak_bytes_held_mb"],
        "loader_cores": cpu["loader"],
        "gateway_cores": cpu["gateway"],
        "wan_cores": cpu["wan"],
        "retries": result["retries"],
        "rtt_estimate_ms": result["rtt_estimate_ms"],
    }


def run_io_bench(cfg: IoBenchConfig, *, say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Every trial of the configuration (repeats interleaved); one row per configuration,
    medians over repeats, with AU relative to the same loader at RTT 0."""
    from farfeed.wan import Link

    acc = cfg.accelerator
    samples = int((cfg.batches + 2) * acc.batch_size * 1.05)
    root = cfg.work / "root"
    make_fixed_size_dataset(root / DATASET, samples=samples, sample_bytes=acc.sample_bytes)
    plan: list[tuple[str, str, float, float]] = []  # (path, loader, rtt_ms, demand)
    for rtt in cfg.rtts_ms:
        for path in cfg.paths:
            plan.append((path, "farfeed", rtt, cfg.demand))
            if cfg.baseline and path == "gateway":
                plan.append((path, "baseline", rtt, cfg.demand))
    if cfg.overload and "gateway" in cfg.paths:
        plan += [("gateway", "farfeed", rtt, cfg.overload) for rtt in cfg.overload_rtts_ms]
    runs: dict[tuple[str, str, float, float], list[dict[str, Any]]] = {p: [] for p in plan}
    say(
        f"profile {acc.name} x{cfg.scale:g}: {acc.batch_size} x {acc.sample_bytes:,} B per "
        f"{acc.compute_s} s = {acc.demand / 1e6:.1f} MB/s; link {cfg.link_bandwidth / 1e6:.1f} MB/s"
    )
    with storage_sites(cfg.paths, root, DATASET, cache_mib=cfg.cache_mib, block_mib=cfg.block_mib) as sites:
        for repeat in range(cfg.repeats):
            for path, loader, rtt, demand in plan:
                compute = acc.compute_s * cfg.demand / demand  # more demand: less compute per batch
                link = Link(rtt=rtt / 1000, bandwidth=cfg.link_bandwidth, window=cfg.window)
                site = sites[path]

                def make_spec(base: str, loader: str = loader, compute: float = compute,
                              repeat: int = repeat, site: Any = site) -> TrialSpec:  # fmt: skip
                    url, options = site.dataset(base)
                    return TrialSpec(
                        loader=loader,
                        url=url,
                        store_options=options,
                        shuffle_block=site.shuffle_block,
                        sample_bytes=acc.sample_bytes,
                        batch_size=acc.batch_size,
                        compute_s=compute,
                        batches=cfg.batches,
                        warmup=cfg.warmup,
                        workers=cfg.workers if loader == "farfeed" else cfg.baseline_workers,
                        decode=cfg.decode if loader == "farfeed" else "bytes",
                        memory_budget=cfg.memory_budget,
                        seed=repeat,
                        max_seconds=cfg.max_seconds,
                    )

                site.fresh()
                asked = site.store_requests()
                result, cpu = run_behind_link(
                    site.upstream, link, make_spec, timeout=cfg.max_seconds * 4 + 120
                )
                now = site.store_requests()
                requests = None if now is None or asked is None else now - asked
                row = _row(cfg, loader, rtt, demand, result, cpu, path=path, store_requests=requests)
                runs[(path, loader, rtt, demand)].append(row)
                per_k = "" if requests is None else f", {row['store_requests_per_1k']:.0f} store req/1k"
                say(
                    f"  {LABELS[path]:>14} {loader:>8} rtt {rtt:g} ms demand {demand:g}: AU "
                    f"{row['au']:.3f}, {row['mb_per_s']:.1f} MB/s, first batch "
                    f"{row['first_batch_s']:.2f} s{per_k}"
                )
    return _summarise(cfg, plan, runs)


def _summarise(
    cfg: IoBenchConfig,
    plan: list[tuple[str, str, float, float]],
    runs: dict[tuple[str, str, float, float], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    rows = []
    for key in plan:
        group = runs[key]
        row = {
            k: median(r[k] for r in group) if isinstance(v, (int, float)) else v
            for k, v in group[0].items()
        }
        row.update(path=key[0], loader=key[1], rtt_ms=key[2], demand=key[3], repeats=len(group))
        row["au_runs"] = [r["au"] for r in group]
        rows.append(row)
    local = {
        (r["path"], r["loader"]): r["au"] for r in rows if r["rtt_ms"] == 0 and r["demand"] == cfg.demand
    }
    for row in rows:
        ref = local.get((row["path"], row["loader"])) if row["demand"] == cfg.demand else None
        row["au_relative"] = row["au"] / ref if ref else None
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table (also valid Markdown)."""
    head = (
        "| loader | RTT ms | demand/link | AU | AU rel. | samples/s | MB/s | link used | stall s "
        "| 1st batch s | peak RSS MB | anon MB ready→peak | held MB | CPU loader/gw/wan "
        "| storage path | store req/1k samples | CPU s/GB loader/gw |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        rel = "-" if r["au_relative"] is None else f"{r['au_relative']:.3f}"
        per_k = "-" if r["store_requests_per_1k"] is None else f"{r['store_requests_per_1k']:.1f}"
        lines.append(
            f"| {r['loader']} | {r['rtt_ms']:g} | {r['demand']:g} | {r['au']:.3f} | {rel} "
            f"| {r['samples_per_s']:.0f} | {r['mb_per_s']:.1f} | {r['link_utilisation']:.2f} "
            f"| {r['stall_s']:.2f} | {r['first_batch_s']:.2f} | {r['peak_rss_mb']:.0f} "
            f"| {r['ready_anon_mb']:.0f}→{r['peak_anon_mb']:.0f} | {r['peak_held_mb']:.0f} "
            f"| {r['loader_cores']:.2f}/{r['gateway_cores']:.2f}/{r['wan_cores']:.2f} "
            f"| {LABELS[r['path']]} | {per_k} "
            f"| {r['loader_cpu_s_per_gb']:.1f}/{r['gateway_cpu_s_per_gb']:.1f} |"
        )
    return "\n".join(lines)
