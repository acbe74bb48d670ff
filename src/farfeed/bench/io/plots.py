"""The data-bound job's plot: accelerator utilisation vs RTT, one line per loader
(matplotlib, Agg backend: no display needed).

    save_au_figure(rows, Path("demo-out/data-bound-au-vs-rtt.png"), setup=info)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLOURS = {"farfeed": "tab:blue", "baseline": "tab:red"}
LABELS = {
    "farfeed": "farfeed (batched requests, exact prefetch)",
    "baseline": "one GET per file (ImageFolder over HTTP)",
}
#: MLPerf Storage's pass mark for ResNet-50: AU >= 90 %.
PASS_AU = 0.9


def au_figure(rows: Sequence[dict[str, Any]], *, setup: dict[str, Any] | None = None) -> Any:
    """AU (y, with each trial's band) against the emulated RTT (x), one line per loader,
    MLPerf Storage's 0.9 mark dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for loader in dict.fromkeys(r["loader"] for r in rows):
        points = sorted(
            (r["rtt_ms"], r["au"], _finite(r.get("au_noise")))
            for r in rows
            if r["loader"] == loader
        )
        ax.errorbar(
            [p[0] for p in points],
            [p[1] for p in points],
            yerr=[p[2] for p in points],
            marker="o",
            capsize=3,
            color=COLOURS.get(loader),
            label=LABELS.get(loader, loader),
        )
    ax.axhline(PASS_AU, color="grey", linestyle="--", label="MLPerf Storage pass: AU 0.9")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("emulated round-trip time (ms)")
    ax.set_ylabel("accelerator utilisation (AU, fraction)")
    title = "Data-bound job: accelerator utilisation vs RTT"
    if setup:
        title += (
            f"\n{setup['batch_size']} JPEGs per {setup['compute_s']} s batch, "
            f"{setup['demand']:g} of a {setup['link_mb_s']:.1f} MB/s link, "
            f"{setup['workers']} workers each"
        )
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _finite(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else 0.0


def save_au_figure(
    rows: Sequence[dict[str, Any]], path: Path, *, setup: dict[str, Any] | None = None
) -> Path:
    """Write `au_figure` as a PNG at ``path`` and free it."""
    import matplotlib.pyplot as plt

    fig = au_figure(rows, setup=setup)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
