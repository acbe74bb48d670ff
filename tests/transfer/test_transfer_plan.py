"""`Transfer`: parts and connections planned from the link's bandwidth-delay product."""

from __future__ import annotations

import pytest

from farfeed.errors import ConfigError
from farfeed.transfer.plan import Transfer


def test_plan_follows_bandwidth_delay_product() -> None:
    lan = Transfer(rtt=0.0005, bandwidth=1.25e9)
    wan = Transfer(rtt=0.015, bandwidth=12.5e9)
    far = Transfer(rtt=0.1, bandwidth=12.5e9)
    # 100 Gb/s x 15 ms = 187.5 MB in flight, 4 MiB per stream -> 45 streams, doubled
    assert wan.connections == 90
    assert lan.connections == lan.min_connections
    assert far.connections == far.max_connections
    big = 140 * 10**9
    assert lan.part_size(big) == lan.min_part < wan.part_size(big) <= wan.max_part
    assert wan.part_size(big) % (64 * 1024) == 0
    # small objects are still spread over the connections, never below 64 KiB
    assert Transfer(min_part=64 * 1024).part_size(1000) == 64 * 1024


@pytest.mark.parametrize("kwargs", [{"rtt": -1}, {"bandwidth": 0}, {"overhead": 1.5}, {"min_part": 10}])
def test_plan_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match=repr(next(iter(kwargs.values())))):
        Transfer(**kwargs)  # type: ignore[arg-type]
