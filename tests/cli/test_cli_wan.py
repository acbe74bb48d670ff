"""`farfeed wan` from the command line: --help teaches every knob, a preset really runs,
stats print, Ctrl-C stops cleanly, bad arguments exit 1 with one line."""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time

import pytest
from helpers.sockets import ThreadedServer, connect, measure_until, ping
from typer.testing import CliRunner

from farfeed.cli import app
from farfeed.cli.wan import build_link
from farfeed.errors import ConfigError

KNOBS = [
    "--listen", "--upstream", "--preset", "--rtt-ms", "--distance-km", "--equipment-ms",
    "--bandwidth-mbit", "--window-kib", "--jitter-ms", "--loss", "--corrupt-rate",
    "--corrupt-direction",
    "--handshake", "--cut-every", "--cut-mode", "--cut-duration", "--stats-every",
]  # fmt: skip


def test_help_documents_every_knob_and_the_presets_numbers() -> None:
    result = CliRunner().invoke(app, ["wan", "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0
    for knob in KNOBS:
        assert knob in result.output, knob
    assert "tokyo-fukuoka: 1,000 km, rtt 15 ms, bandwidth 100 Gb/s" in result.output
    assert "transpacific: 9,000 km, rtt 110 ms" in result.output
    for unit in ("milliseconds", "megabits/s", "KiB", "seconds", "per byte"):
        assert unit in result.output, unit


def test_explicit_knobs_override_the_preset() -> None:
    link = build_link(preset="tokyo-fukuoka", rtt_ms=40, window_kib=512, jitter_ms=2, loss=0.001)
    assert (link.rtt, link.window, link.jitter, link.loss) == (0.040, 512 * 1024, 0.002, 0.001)
    assert link.bandwidth == pytest.approx(100e9 / 8)  # kept from the preset
    assert build_link(preset="local", bandwidth_mbit=800).bandwidth == 100e6
    assert build_link(preset="tokyo-fukuoka", bandwidth_mbit=0).bandwidth is None
    assert build_link(preset="local", distance_km=1000).rtt == pytest.approx(0.015)
    with pytest.raises(ConfigError, match="not both"):
        build_link(preset="local", rtt_ms=10, distance_km=100)
    with pytest.raises(ConfigError, match="-3"):
        build_link(preset="local", bandwidth_mbit=-3)


def test_bad_arguments_exit_1_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "farfeed.cli", "wan", "--upstream", "127.0.0.1:1", "--loss", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "farfeed: error: loss must be a probability in [0, 1], got 2.0"


def test_tokyo_fukuoka_preset_runs_prints_stats_and_stops_on_ctrl_c(
    echo_server: ThreadedServer,
) -> None:
    host, port = echo_server.address
    proc = subprocess.Popen(
        [sys.executable, "-m", "farfeed.cli", "wan", "--preset", "tokyo-fukuoka",
         "--listen", "127.0.0.1:0", "--upstream", f"{host}:{port}", "--stats-every", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert banner.startswith("farfeed wan listening on 127.0.0.1:")
        assert f"-> {host}:{port} (rtt 15.0 ms, bandwidth 100 Gb/s, window 4096 KiB)" in banner
        listen = banner.split()[4]
        with connect((listen.rsplit(":", 1)[0], int(listen.rsplit(":", 1)[1]))) as sock:
            ping(sock)
            kept = measure_until(
                lambda: statistics.median(ping(sock) for _ in range(5)),
                lambda m: abs(m - 0.015) <= 0.002,
            )
            line = proc.stdout.readline()
        assert line.startswith("wan: up ") and "connections 1 open / 1 total" in line
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "farfeed wan stopped: up " in out and "connections 0 open / 1 total" in out
    assert abs(kept - 0.015) <= 0.002, kept


def test_cut_every_resets_connections_on_schedule(echo_server: ThreadedServer) -> None:
    host, port = echo_server.address
    proc = subprocess.Popen(
        [sys.executable, "-m", "farfeed.cli", "wan", "--listen", "127.0.0.1:0",
         "--upstream", f"{host}:{port}", "--cut-every", "0.3", "--cut-mode", "reset",
         "--stats-every", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        listen = proc.stdout.readline().split()[4]
        with connect((listen.rsplit(":", 1)[0], int(listen.rsplit(":", 1)[1]))) as sock:
            with pytest.raises(ConnectionResetError):
                for _ in range(200):  # 2 s at most
                    ping(sock)
                    time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "failed" in out and "cuts 0" not in out.splitlines()[-1]
