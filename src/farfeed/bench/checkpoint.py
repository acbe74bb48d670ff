"""The checkpoint benchmark: goodput of save / load through the emulated link, and the
training stall per checkpoint against the host-memory snapshot time.

    farfeed bench checkpoint --rtt-ms 15,100 --size-mb 1024 --bandwidth-mbit 400 --json bench-out/checkpoint.json

A gateway (`GatewayProcess`, root in /dev/shm so its disk is not the limit) sits behind
a `WanProcess` with the given RTT, bandwidth cap and per-connection window; this process
saves and loads a state of ``size_mb`` of float32 tensors through it. Goodput is
checkpoint bytes / wall time; the ratio is goodput / emulated bandwidth. The headroom
is what the emulator alone carries at that RTT with the same connections (its ceiling)
and what the whole path carries with no bandwidth cap, over the cap.
"""

from __future__ import annotations

import ctypes
import gc
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import farfeed.checkpoint as ckpt
from farfeed.errors import ConfigError

MB = 1_000_000


@dataclass(frozen=True, kw_only=True)
class CheckpointBench:
    """What to measure. Bandwidth in Mbit/s (scaled to the machine), RTTs in ms."""

    rtts_ms: tuple[float, ...] = (15.0, 100.0)
    size_mb: int = 1024
    bandwidth_mbit: float = 400.0
    window_kib: int = 4096
    tensors: int = 32
    repeats: int = 3
    stall_repeats: int = 15
    ceiling_seconds: float = 3.0
    root: Path | None = None

    def __post_init__(self) -> None:
        if not self.rtts_ms or any(r < 0 for r in self.rtts_ms):
            raise ConfigError(f"rtts_ms must be values >= 0, got {self.rtts_ms!r}")
        if self.size_mb < 1 or self.tensors < 1 or self.repeats < 1 or self.stall_repeats < 1:
            raise ConfigError(
                f"need size_mb, tensors, repeats, stall_repeats >= 1; got {self.size_mb!r}, "
                f"{self.tensors!r}, {self.repeats!r}, {self.stall_repeats!r}"
            )
        if not self.ceiling_seconds > 0:
            raise ConfigError(f"ceiling_seconds must be > 0, got {self.ceiling_seconds!r}")
        if not self.bandwidth_mbit > 0 or self.window_kib < 64:
            raise ConfigError(
                f"need bandwidth_mbit > 0 and window_kib >= 64; got {self.bandwidth_mbit!r}, {self.window_kib!r}"
            )

    @property
    def bandwidth(self) -> float:
        """The emulated bandwidth in bytes/s."""
        return self.bandwidth_mbit * 1e6 / 8

    @property
    def window(self) -> int:
        """The per-connection window in bytes."""
        return self.window_kib * 1024


def make_state(size_mb: int, tensors: int, *, seed: int = 0) -> dict[str, Any]:
    """``size_mb`` MB of random float32 in ``tensors`` tensors, plus a little non-tensor state."""
    gen = torch.Generator().manual_seed(seed)
    each = size_mb * MB // 4 // tensors
    model = {f"layer{i:03d}.weight": torch.randn(each, generator=gen) for i in range(tensors)}
    return {"model": model, "step": 0, "loader": {"epoch": 0, "consumed": 1234}}


def _snapshot_copy(state: dict[str, Any]) -> float:
    """Seconds to copy the state's tensors to fresh host memory: the reference stall."""
    t0 = time.perf_counter()
    copies = [torch.empty(t.shape, dtype=t.dtype).copy_(t) for t in state["model"].values()]
    seconds = time.perf_counter() - t0
    del copies
    return seconds


def _release_memory() -> None:
    """Free dropped tensors and hand freed heap back to the OS, so every timed copy starts
    from the same state (fresh pages); otherwise a copy into just-freed memory is several
    times faster than one that faults its pages in, and the comparison is noise."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: medians of interleaved runs still apply
        pass


def measure_stall(cfg: CheckpointBench, url: str, state: dict[str, Any]) -> dict[str, Any]:
    """Time `save` blocks vs the bare host copy, in alternating order, from the same memory state.

    Each upload finishes before the next measurement (a checkpoint interval longer than
    the upload). ``own_snapshot_s`` is the copy time measured inside `save` itself.
    """
    snaps: list[float] = []
    stalls: list[float] = []
    own: list[float] = []

    def bare() -> None:
        _release_memory()
        snaps.append(_snapshot_copy(state))

    def saved(i: int) -> None:
        _release_memory()
        t0 = time.perf_counter()
        handle = ckpt.save(state, url, step=1000 + i, keep=1)
        stalls.append(time.perf_counter() - t0)
        own.append(handle.snapshot_seconds)
        handle.wait()

    for i in range(cfg.stall_repeats):
        if i % 2:  # alternate which goes first
            bare()
            saved(i)
        else:
            saved(i)
            bare()
    snap, stall = statistics.median(snaps), statistics.median(stalls)
    return {
        "snapshot_s": snap,
        "stall_s": stall,
        # per adjacent pair, then the median: the shared machine drifts more than the pair differs
        "ratio": statistics.median(st / sn for st, sn in zip(stalls, snaps, strict=True)),
        "own_snapshot_s": statistics.median(own),
        "overhead_s": statistics.median(s - o for s, o in zip(stalls, own, strict=True)),
        "snapshots": snaps,
        "stalls": stalls,
    }


def measure_path(
    cfg: CheckpointBench,
    gateway_url: str,
    state: dict[str, Any],
    *,
    rtt: float,
    capped: bool,
    repeats: int,
    run: str,
    root: Path,
) -> dict[str, Any]:
    """Save then load ``repeats`` times through a `WanProcess` (capped or not); times in s."""
    from farfeed.wan import Link, WanProcess, parse_address

    upstream = parse_address(gateway_url.split("://", 1)[1], what="gateway address")
    link = Link(rtt=rtt, bandwidth=cfg.bandwidth if capped else None, window=cfg.window)
    plan = ckpt.Transfer(rtt=rtt, bandwidth=cfg.bandwidth, window=cfg.window)
    ups, downs, nbytes = [], [], 0
    with WanProcess.start(upstream=upstream, link=link) as wan:
        url = wan.url_for(f"{gateway_url}/checkpoints/{run}")
        for i in range(repeats):
            handle = ckpt.save(state, url, step=i + 1, keep=None, transfer=plan)
            handle.wait()
            assert handle.upload_seconds is not None
            ups.append(handle.upload_seconds)
            nbytes = handle.nbytes
            t0 = time.perf_counter()
            ckpt.load(url, step=i + 1, transfer=plan)
            downs.append(time.perf_counter() - t0)
            shutil.rmtree(root / "checkpoints" / run, ignore_errors=True)  # bound the memory used
    up, down = statistics.median(ups), statistics.median(downs)
    return {
        "bytes": nbytes,
        "upload_s": ups,
        "download_s": downs,
        "upload_goodput": nbytes / up,
        "download_goodput": nbytes / down,
        "connections": plan.connections,
        "part_size": plan.part_size(nbytes),
    }


def run_checkpoint_bench(cfg: CheckpointBench, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Every figure of the benchmark, as a JSON-able dict."""
    from farfeed.bench.wan import measure_ceiling
    from farfeed.server import GatewayProcess

    shm = Path("/dev/shm")
    parent = cfg.root or (shm if shm.is_dir() else None)
    root = Path(tempfile.mkdtemp(prefix="farfeed-bench-ckpt-", dir=parent))
    (root / "checkpoints").mkdir()
    state = make_state(cfg.size_mb, cfg.tensors)
    result: dict[str, Any] = {"config": {**asdict(cfg), "root": str(root)}, "links": []}
    try:
        with GatewayProcess.start(root) as gw:
            say(f"stall: {cfg.stall_repeats} saves of {cfg.size_mb} MB (to a local folder: save returns after the snapshot)")
            result["stall"] = measure_stall(cfg, str(root / "stall"), state)
            for ms in cfg.rtts_ms:
                rtt = ms / 1000
                say(f"rtt {ms:g} ms: emulator ceiling, path ceiling, then {cfg.repeats} x save + load")
                plan = ckpt.Transfer(rtt=rtt, bandwidth=cfg.bandwidth, window=cfg.window)
                emu = measure_ceiling(rtt=rtt, connections=plan.connections, seconds=cfg.ceiling_seconds, window=cfg.window)
                free = measure_path(cfg, gw.url, state, rtt=rtt, capped=False, repeats=1, run=f"free-{ms:g}", root=root)
                capped = measure_path(cfg, gw.url, state, rtt=rtt, capped=True, repeats=cfg.repeats, run=f"cap-{ms:g}", root=root)
                result["links"].append(
                    {
                        "rtt_ms": ms,
                        "bandwidth": cfg.bandwidth,
                        **capped,
                        "upload_ratio": capped["upload_goodput"] / cfg.bandwidth,
                        "download_ratio": capped["download_goodput"] / cfg.bandwidth,
                        "emulator_ceiling": emu.throughput,
                        "path_ceiling_upload": free["upload_goodput"],
                        "path_ceiling_download": free["download_goodput"],
                        "headroom": emu.throughput / cfg.bandwidth,
                    }
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result


def format_report(result: dict[str, Any]) -> str:
    """The figures as a small text table."""
    cfg = result["config"]
    lines = [
        f"checkpoint of {cfg['size_mb']} MB in {cfg['tensors']} tensors; link {cfg['bandwidth_mbit']:g} Mbit/s, "
        f"window {cfg['window_kib']} KiB; medians of {cfg['repeats']}",
        f"{'RTT ms':>7} {'conns':>5} {'part MiB':>8} {'up MB/s':>8} {'up/link':>8} {'down MB/s':>9} {'down/link':>9} "
        f"{'emu ceiling':>11} {'path up/down (no cap) MB/s':>27}",
    ]
    for r in result["links"]:
        lines.append(
            f"{r['rtt_ms']:>7g} {r['connections']:>5} {r['part_size'] / 2**20:>8.1f} {r['upload_goodput'] / MB:>8.1f} "
            f"{r['upload_ratio']:>8.3f} {r['download_goodput'] / MB:>9.1f} {r['download_ratio']:>9.3f} "
            f"{r['headroom']:>10.1f}x {r['path_ceiling_upload'] / MB:>13.0f} / {r['path_ceiling_download'] / MB:.0f}"
        )
    s = result["stall"]
    lines.append(
        f"stall per checkpoint: {s['stall_s'] * 1000:.1f} ms vs host snapshot {s['snapshot_s'] * 1000:.1f} ms "
        f"(median pair ratio {s['ratio']:.3f}x); save's own copy {s['own_snapshot_s'] * 1000:.1f} ms + "
        f"{s['overhead_s'] * 1000:.2f} ms other (medians of {len(s['stalls'])})"
    )
    return "\n".join(lines)
