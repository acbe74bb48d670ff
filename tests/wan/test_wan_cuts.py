"""Link cuts as values: `Cut` and `CutPlan` check their arguments; `CutTimers` fires and repeats them."""

from __future__ import annotations

import asyncio

import pytest

from farfeed.errors import ConfigError
from farfeed.wan.cuts import Cut, CutPlan, CutTimers


def test_cut_and_plan_refuse_bad_values_and_quote_them() -> None:
    assert Cut(mode="stall", duration=2).duration == 2.0
    with pytest.raises(ConfigError, match="'sometimes'"):
        Cut(mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="-1"):
        Cut(duration=-1)
    with pytest.raises(ConfigError, match="True"):
        Cut(duration=True)
    with pytest.raises(ConfigError, match="cut time .* -0.5"):
        CutPlan(at=-0.5)
    with pytest.raises(ConfigError, match="cut interval .* 0"):
        CutPlan(at=1.0, every=0)
    with pytest.raises(ConfigError, match="cut interval .* -2"):
        CutPlan.periodic(-2, Cut())


def test_a_plan_repeats_only_with_an_interval() -> None:
    cut = Cut(mode="stall", duration=0.5)
    assert CutPlan(at=3.0, cut=cut).then() is None
    assert CutPlan(at=3.0, cut=cut, every=10.0).then() == CutPlan(at=10.0, cut=cut, every=10.0)
    assert CutPlan.periodic(5.0, cut) == CutPlan(at=5.0, cut=cut, every=5.0)


async def test_cut_timers_fire_repeat_and_cancel() -> None:
    fired: list[Cut] = []
    timers = CutTimers(fired.append)
    loop = asyncio.get_running_loop()
    timers.add(loop, CutPlan(at=0.0, cut=Cut(mode="stall"), every=0.01))
    timers.add(loop, CutPlan(at=0.0, cut=Cut(mode="reset")))
    for _ in range(1000):
        if len(fired) >= 4:
            break
        await asyncio.sleep(0.005)
    timers.cancel()
    count = len(fired)
    await asyncio.sleep(0.05)
    assert len(fired) == count >= 4
    assert [c.mode for c in fired].count("reset") == 1
