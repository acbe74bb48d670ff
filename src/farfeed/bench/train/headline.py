"""The headline of a training benchmark: what the distance cost, measured where it acts, and
never a signed figure the run cannot resolve.

    headline_markdown(results)   # | job | cost from stalls | wall time remote/near - 1 | PoC |

Per job the headline gives first the **cost from stalls** (remote's extra wait for data
over near's, step by step, as a fraction of near's time: what the distance does to a
training loop), then the **wall-time ratio** remote/near - 1 with its noise band (what a
stopwatch sees, neighbours' load included). Each is printed as a signed percentage only
when it is larger than its noise band (`farfeed.bench.train.summary.noise_band`);
otherwise the cell says "no difference measurable at ±X %" (`figures.measurable`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from farfeed.bench.train.figures import measurable, pct
from farfeed.bench.train.report import POC, job_name


def stall_cell(result: dict[str, Any], *, short: bool = False) -> str:
    """The cost from stalls of one result, with the extra wait per step when measurable."""
    effect, noise = result["overhead_stall"], result.get("overhead_stall_noise", float("nan"))
    text = measurable(effect, noise, short=short)
    per_step = result.get("stall_ms_per_step")
    if text[:1] in "+-" and per_step is not None and math.isfinite(per_step):
        text += f" ({per_step:+.2f} ms per step)"
    return text


def wall_cell(result: dict[str, Any], *, short: bool = False) -> str:
    """The wall-time cost remote/near - 1 of one result, qualified by its noise band."""
    return measurable(result["overhead"], result.get("overhead_noise", float("nan")), short=short)


def poc_cell(result: dict[str, Any]) -> str:
    """The PoC's cost of distance for the same kind of job (remote vs local, real line)."""
    poc = POC.get(result["workload"])
    return f"{poc.short}: {pct(poc.overhead)}" if poc else "-"


HEADER = (
    "job",
    "cost from stalls (remote's extra data wait over near's, per step)",
    "wall time remote/near - 1",
    "PoC (8 GPUs, 1,000 km)",
)


def headline_rows(results: Sequence[dict[str, Any]]) -> list[list[str]]:
    """One row per training result: job, cost from stalls, wall-time ratio, the PoC's figure."""
    return [
        [job_name(result), stall_cell(result), wall_cell(result), poc_cell(result)]
        for result in results
    ]


def headline_markdown(results: Sequence[dict[str, Any]]) -> str:
    """The headline as a GitHub Markdown table."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in headline_rows(results)]
    return "\n".join(lines)
