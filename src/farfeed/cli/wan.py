"""CLI: `farfeed wan`, the emulated long-distance link between two addresses.

farfeed wan --preset tokyo-fukuoka --listen 127.0.0.1:9470 --upstream 127.0.0.1:8470
"""

from __future__ import annotations

from typing import Any

import typer

from farfeed.errors import ConfigError
from farfeed.wan import parse_address
from farfeed.wan.link import EQUIPMENT_MS, FIBRE_S_PER_KM, PRESETS, Link, preset_table
from farfeed.wan.serve import run_wan

HELP = f"""Emulate a long-distance link: a TCP proxy from --listen to --upstream.

Adds the RTT (half each way), caps the bandwidth per direction (shared by all
connections), limits each connection to a TCP-like window (one stream never exceeds
window / RTT), charges a new connection one extra RTT (the handshake), and can add
jitter, loss (as retransmission delay), link cuts and corrupted bytes.
Explicit knobs override the preset's values. Prints stats every --stats-every
seconds; Ctrl-C stops it.

\b
Presets (route km, round trip, bandwidth per direction):
{preset_table()}

\b
Example: put 1,000 km between a training job and `farfeed serve` on port 8470:
  farfeed wan --preset tokyo-fukuoka --listen 127.0.0.1:9470 --upstream 127.0.0.1:8470
  then read http://127.0.0.1:9470/DATASET instead of http://127.0.0.1:8470/DATASET
"""


def wan(
    upstream: str = typer.Option(
        ..., "--upstream", help="HOST:PORT of the server at the far end (e.g. `farfeed serve`)."
    ),
    listen: str = typer.Option(
        "127.0.0.1:9470",
        "--listen",
        help="HOST:PORT to accept clients on; port 0 picks a free one (printed).",
    ),
    preset: str = typer.Option(
        "local", "--preset", help=f"Named route to start from: {', '.join(PRESETS)}."
    ),
    rtt_ms: float | None = typer.Option(
        None,
        "--rtt-ms",
        help="Round-trip time, milliseconds, half each way. [default: the preset's]",
    ),
    distance_km: float | None = typer.Option(
        None,
        "--distance-km",
        help=f"Set the RTT from a fibre distance instead: {FIBRE_S_PER_KM * 1e6:g} us per km each way plus --equipment-ms.",
    ),
    equipment_ms: float = typer.Option(
        EQUIPMENT_MS,
        "--equipment-ms",
        help="Round-trip allowance for equipment and route detours added to --distance-km, milliseconds.",
    ),
    bandwidth_mbit: float | None = typer.Option(
        None,
        "--bandwidth-mbit",
        help="Bandwidth per direction, megabits/s, shared by all connections; 0 = unlimited. [default: the preset's]",
    ),
    window_kib: int | None = typer.Option(
        None,
        "--window-kib",
        help="TCP-like window per connection per direction, KiB (4096 = Linux's usual 4 MiB send cap). [default: 4096]",
    ),
    jitter_ms: float | None = typer.Option(
        None,
        "--jitter-ms",
        help="Bound of the random extra one-way delay, milliseconds; bytes never reorder. [default: 0]",
    ),
    loss: float | None = typer.Option(
        None,
        "--loss",
        help="Probability that a 1448-byte segment is lost; its chunk and what follows it on that connection arrive one RTT late. [default: 0]",
    ),
    corrupt_rate: float | None = typer.Option(
        None,
        "--corrupt-rate",
        help="Probability per byte of flipping it (for integrity tests), e.g. 1e-6. [default: 0]",
    ),
    corrupt_direction: str | None = typer.Option(
        None,
        "--corrupt-direction",
        help="Which bytes --corrupt-rate may flip: `both`, `down` (responses, server to client) or `up` (requests). [default: both]",
    ),
    handshake: bool | None = typer.Option(
        None,
        "--handshake/--no-handshake",
        help="Charge each new connection one extra RTT before its first bytes. [default: on]",
    ),
    cut_every: float | None = typer.Option(
        None, "--cut-every", help="Cut the link every this many seconds. [default: never]"
    ),
    cut_mode: str = typer.Option(
        "reset",
        "--cut-mode",
        help="What a cut does: `reset` every connection (new ones refused for --cut-duration), or `stall` all traffic for --cut-duration.",
    ),
    cut_duration: float = typer.Option(
        0.0, "--cut-duration", help="How long each cut lasts, seconds."
    ),
    stats_every: float = typer.Option(
        5.0,
        "--stats-every",
        help="Print stats (bytes each way, connections, throughput) every this many seconds; 0 = only at exit.",
    ),
) -> None:
    link = build_link(
        preset=preset, rtt_ms=rtt_ms, distance_km=distance_km, equipment_ms=equipment_ms,
        bandwidth_mbit=bandwidth_mbit, window_kib=window_kib, jitter_ms=jitter_ms, loss=loss,
        corrupt_rate=corrupt_rate, corrupt_direction=corrupt_direction, handshake=handshake,
    )  # fmt: skip
    if cut_mode not in ("reset", "stall"):
        raise ConfigError(f"--cut-mode must be reset or stall, got {cut_mode!r}")
    run_wan(
        upstream=parse_address(upstream, what="--upstream"),
        listen=parse_address(listen, what="--listen"),
        link=link,
        stats_every=stats_every,
        cut_every=cut_every,
        cut_mode=cut_mode,  # type: ignore[arg-type]
        cut_duration=cut_duration,
    )


def build_link(
    *,
    preset: str,
    rtt_ms: float | None = None,
    distance_km: float | None = None,
    equipment_ms: float = EQUIPMENT_MS,
    bandwidth_mbit: float | None = None,
    window_kib: int | None = None,
    jitter_ms: float | None = None,
    loss: float | None = None,
    corrupt_rate: float | None = None,
    corrupt_direction: str | None = None,
    handshake: bool | None = None,
) -> Link:
    """The preset's link with every knob the user gave applied over it (CLI units)."""
    link = Link.from_preset(preset)
    if rtt_ms is not None and distance_km is not None:
        raise ConfigError(
            f"give --rtt-ms or --distance-km, not both (got {rtt_ms!r} ms and {distance_km!r} km)"
        )
    changes: dict[str, Any] = {}
    if distance_km is not None:
        changes["rtt"] = Link.from_distance(distance_km, equipment_ms=equipment_ms).rtt
    if rtt_ms is not None:
        changes["rtt"] = rtt_ms / 1000
    if bandwidth_mbit is not None:
        if bandwidth_mbit < 0:
            raise ConfigError(
                f"--bandwidth-mbit must be >= 0 (0: unlimited), got {bandwidth_mbit!r}"
            )
        changes["bandwidth"] = bandwidth_mbit * 1e6 / 8 if bandwidth_mbit else None
    if window_kib is not None:
        changes["window"] = window_kib * 1024
    if jitter_ms is not None:
        changes["jitter"] = jitter_ms / 1000
    for name, value in (
        ("loss", loss),
        ("corrupt_rate", corrupt_rate),
        ("corrupt_direction", corrupt_direction),
        ("handshake", handshake),
    ):
        if value is not None:
            changes[name] = value
    return link.with_(**changes)


def register(app: typer.Typer) -> None:
    """Add `farfeed wan` to the `farfeed` app."""
    app.command("wan", help=HELP)(wan)
