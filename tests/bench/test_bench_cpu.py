"""`farfeed bench cpu`: one quick run, loopback and through the emulator, and the CLI's errors.

The run is real (gateway, emulator, client processes) on a ~46 MB dataset, so its
figures are noisy; the assertions are about what must hold whatever the noise: every byte
arrived, the window left the warm-up out, every side's CPU was counted, and both floors
(one recv copy per byte, into one cache-warm buffer or stored in an arena) cost the client
less than farfeed's in-process path (which also runs the fetch engine, verifies checksums
and builds a dict per sample; on this box they differ four- to tenfold, far beyond the
noise); every row carries its ratio to the storing floor of the same link and repeat.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import pytest

from farfeed.bench.cpu import CpuBenchConfig, run_cpu_bench, write_cpu_report
from farfeed.bench.cpu.floor import ALIGN, aligned_buffer, curl_path

SAMPLES, SAMPLE_BYTES = 400, 114_660  # 46 MB: several 4 MiB requests after the warm-up
MODES = ("floor", "floor-store", "in-process", "workers-1")
LINKS = ("none", "2ms")


def test_quick_run_counts_every_byte_and_every_side(tmp_path: Path) -> None:
    cfg = CpuBenchConfig.quick_defaults(
        links=LINKS, modes=MODES, samples=SAMPLES, sample_bytes=SAMPLE_BYTES, batch_size=8,
        workdir=tmp_path / "work", timeout=120,
    )  # fmt: skip
    said: list[str] = []
    report = run_cpu_bench(cfg, command="farfeed bench cpu --quick", say=said.append)

    modes = list(MODES)
    if curl_path() is not None:
        modes.insert(1, "curl")
    assert [(r["link"], r["mode"]) for r in report["rows"]] == [
        (k, m) for k in LINKS for m in modes
    ]
    assert len(report["runs"]) == len(LINKS) * len(modes)
    assert sum(line.startswith("[") for line in said) == len(report["runs"])  # progress per run

    shard_files = sorted((tmp_path / "work" / "root").glob("*/*.tar"))
    shard_bytes = sum(p.stat().st_size for p in shard_files)
    assert report["dataset"]["shard_bytes"] == shard_bytes
    for run in report["runs"]:
        floor = run["mode"] in ("floor", "floor-store", "curl")
        expected = shard_bytes * cfg.floor_passes if floor else SAMPLES * SAMPLE_BYTES * cfg.epochs
        assert run["expected_bytes"] == expected
        assert run["total_bytes"] == expected, run  # every byte of every epoch arrived
        assert run["complete"], run
        if run["mode"] != "curl":  # curl's window is its whole run
            assert run["window"] == "steady"
            assert 0 < run["window_bytes"] < run["total_bytes"], run  # warm-up left out
            if not floor:  # the window lies in the last epoch
                assert run["window_bytes"] <= SAMPLES * SAMPLE_BYTES, run
        assert run["window_s"] > 0 and run["mb_s"] > 0
        assert run["client_cpu_per_gb"] > 0 and run["gateway_cpu_per_gb"] > 0, run
        if run["link"] == "none":
            assert run["wan_cpu_s"] is None and run["wan_cpu_per_gb"] is None
        else:
            assert run["wan_cpu_per_gb"] > 0, run

    rows = {(r["link"], r["mode"]): r for r in report["rows"]}
    for link in LINKS:
        floor, in_process = rows[(link, "floor")], rows[(link, "in-process")]
        storing = rows[(link, "floor-store")]
        assert floor["client_cpu_per_gb"] < in_process["client_cpu_per_gb"], (floor, in_process)
        assert storing["client_cpu_per_gb"] < in_process["client_cpu_per_gb"], (storing, in_process)
        assert storing["client_x_storing_floor"] == pytest.approx(1.0)
        assert storing["client_x_floor"] == pytest.approx(
            storing["client_cpu_per_gb"] / floor["client_cpu_per_gb"]
        )
        for mode in modes:  # every row, the floors too, is set against the storing floor
            assert rows[(link, mode)]["client_x_storing_floor"] == pytest.approx(
                rows[(link, mode)]["client_cpu_per_gb"] / storing["client_cpu_per_gb"]
            )
            assert rows[(link, mode)]["gateway_x_storing_floor"] == pytest.approx(
                rows[(link, mode)]["gateway_cpu_per_gb"] / storing["gateway_cpu_per_gb"]
            )
        assert floor["client_x_floor"] == pytest.approx(1.0)
        assert in_process["client_x_floor"] == pytest.approx(
            in_process["client_cpu_per_gb"] / floor["client_cpu_per_gb"]
        )
        assert in_process["gateway_cores_at_line_rate"] == pytest.approx(
            12.5 * in_process["gateway_cpu_per_gb"]
        )
    assert report["links"]["none"] is None and report["links"]["2ms"]["rtt"] == pytest.approx(0.002)
    assert report["machine"]["cpus"] >= 1 and len(report["machine"]["loadavg_before"]) == 3

    table = write_cpu_report(report, tmp_path / "out" / "results.json")
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == report
    markdown = table.read_text()
    assert "floor (socket)" in markdown and "| x storing floor |" in markdown
    storing_line = next(ln for ln in markdown.splitlines() if "| floor (storing) |" in ln)
    assert storing_line.split(" | ")[5] == "1.0x"  # link, mode, MB/s, CPU-s/GB, x floor, x storing


@pytest.mark.parametrize("nbytes", [1, 1 << 20, (1 << 20) + 5])
def test_floor_memory_starts_on_a_cache_line(nbytes: int) -> None:
    # a MiB-sized bytearray starts 16 bytes past a page: the kernel's copy into it cost ~3x
    view = aligned_buffer(nbytes)
    assert len(view) == nbytes and not view.readonly and not any(view[-64:])
    assert ctypes.addressof(ctypes.c_char.from_buffer(view)) % ALIGN == 0


@pytest.mark.parametrize(
    ("option", "value", "quoted"),
    [("--links", "none,mars", "'mars'"), ("--warmup", "1.5", "1.5")],
)
def test_cli_rejects_a_bad_option_with_one_line(
    tmp_path: Path, option: str, value: str, quoted: str
) -> None:
    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "farfeed", "bench", "cpu", option, value, "--workdir", str(work)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("farfeed: error:") and quoted in lines[0], lines
    assert not work.exists()  # refused before any work
