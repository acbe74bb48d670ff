"""PNG plots of a training benchmark (matplotlib, Agg backend: no display needed).

- throughput over time, local vs near vs remote (x: seconds, y: samples/s);
- training loss per step, per placement (the curves should lie on top of each other:
  same seed, same data order, whatever the distance);
- cost of distance vs RTT (x: ms, y: %), one line per workload, with the 1 % goal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Steps averaged for one throughput point (a single step is too noisy to read).
SMOOTH = 5

COLOURS = {"local": "tab:green", "near": "tab:blue", "remote": "tab:red"}
#: Colours of extra sweep placements, in order.
EXTRA = ("tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def colour(name: str, names: Sequence[str]) -> str:
    """A fixed colour per placement: local green, near blue, remote red, sweeps after."""
    if name in COLOURS:
        return COLOURS[name]
    extras = [n for n in names if n not in COLOURS]
    return EXTRA[extras.index(name) % len(EXTRA)]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def throughput_series(
    steps: Sequence[Sequence[float]], *, smooth: int = SMOOTH
) -> tuple[list[float], list[float]]:
    """(time s, samples/s) from per-step ``[end, samples, loss, wait]`` rows, averaged over ``smooth`` steps."""
    xs: list[float] = []
    ys: list[float] = []
    for i in range(smooth, len(steps)):
        dt = steps[i][0] - steps[i - smooth][0]
        if dt > 0:
            xs.append(steps[i][0])
            ys.append(sum(s[1] for s in steps[i - smooth + 1 : i + 1]) / dt)
    return xs, ys


def throughput_figure(result: dict[str, Any]) -> Any:
    """Samples/s over time for each placement of one workload."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, steps in result["steps"].items():
        xs, ys = throughput_series(steps, smooth=min(SMOOTH, max(1, len(steps) // 4)))
        ax.plot(xs, ys, label=name, color=colour(name, list(result["steps"])))
    ax.set_xlabel("time since the run started (s)")
    ax.set_ylabel(f"training throughput (samples/s, {SMOOTH}-step mean)")
    ax.set_title(
        f"{result['workload']}: throughput, local vs near vs remote ({result['rtt_ms']:g} ms)"
    )
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(title="placement")
    fig.tight_layout()
    return fig


def loss_figure(result: dict[str, Any]) -> Any:
    """Training loss per step for each placement of one workload."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, steps in result["steps"].items():
        ax.plot(
            range(1, len(steps) + 1),
            [s[2] for s in steps],
            label=name,
            color=colour(name, list(result["steps"])),
            alpha=0.8,
        )
    ax.set_xlabel("optimizer step (one batch per rank)")
    ax.set_ylabel("training loss (cross-entropy, nats)")
    ax.set_title(f"{result['workload']}: training loss per step (same seed, same data order)")
    ax.grid(alpha=0.3)
    ax.legend(title="placement")
    fig.tight_layout()
    return fig


def overhead_figure(results: Sequence[dict[str, Any]]) -> Any:
    """Cost of distance (remote/near - 1, %) against the emulated RTT, one line per workload."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for result in results:
        points = result["sweep"]
        ax.plot(
            [p["rtt_ms"] for p in points],
            [p["overhead"] * 100 for p in points],
            marker="o",
            label=result["workload"],
        )
    ax.axhline(1.0, color="grey", linestyle="--", label="goal: 1 %")
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_xlabel("emulated round-trip time (ms)")
    ax.set_ylabel("cost of distance, time-to-train vs 0 ms (%)")
    ax.set_title("Cost of distance vs RTT (median of paired rounds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def save_figure(fig: Any, path: Path) -> Path:
    """Write ``fig`` as a PNG and free it."""
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(results: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """Every plot for these results into ``out``; returns the files written."""
    paths = []
    for result in results:
        name = result["workload"]
        paths.append(save_figure(throughput_figure(result), out / f"throughput-{name}.png"))
        paths.append(save_figure(loss_figure(result), out / f"loss-{name}.png"))
    if results:
        paths.append(save_figure(overhead_figure(results), out / "overhead-vs-rtt.png"))
    return paths
