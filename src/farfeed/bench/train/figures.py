"""How the training reports write their figures: percentages, durations, and the rule that
a difference is printed with a sign only when it is larger than its noise.

    measurable(0.053, 0.45)   # 'no difference measurable at ±45 %'
    measurable(0.053, 0.012)  # '+5.3 % ±1.2 %'
"""

from __future__ import annotations

import math

#: What a table says when the noise is at least as large as the effect.
NONE_MEASURABLE = "no difference measurable at ±{band} %"


def pct(x: float, *, signed: bool = True) -> str:
    """0.0123 -> ``+1.2 %``."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x * 100:+.1f} %" if signed else f"{x * 100:.1f} %"


def seconds(x: float) -> str:
    """A duration for the table: ``24.3 s`` or ``3.2 min``."""
    return f"{x / 60:.2f} min" if x >= 600 else f"{x:.1f} s"


def _digits(band: float) -> int:
    """Decimals that show a band of ``band`` (a fraction) as a percentage with two
    significant digits: 45 %, 3.1 %, 0.42 %, 0.031 %."""
    percent = abs(band) * 100
    if percent >= 10:
        return 0
    if percent >= 1:
        return 1
    if percent >= 0.1:
        return 2
    return 3


def measurable(effect: float, noise: float, *, short: bool = False) -> str:
    """``effect`` (a fraction, e.g. remote/near - 1) as ``+5.3 % ±1.2 %`` when it is larger
    than ``noise`` (its band, a fraction), else "no difference measurable at ±45 %"
    (``short``: "within ±45 % noise", for narrow terminal tables). Without a noise estimate
    (NaN: a run too short to have one) the figure is printed and says so; a NaN effect is
    "n/a"."""
    if effect is None or not math.isfinite(effect):
        return "n/a"
    if noise is None or not math.isfinite(noise):
        return pct(effect) + " (noise not measured)"
    d = _digits(noise)
    band = f"{abs(noise) * 100:.{d}f}"
    if abs(effect) <= abs(noise):
        return f"within ±{band} % noise" if short else NONE_MEASURABLE.format(band=band)
    return f"{effect * 100:+.{d}f} % ±{band} %"
