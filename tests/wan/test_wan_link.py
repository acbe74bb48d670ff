"""Link settings, presets and address helpers: validated up front, bad values quoted."""

from __future__ import annotations

import pytest

from farfeed.errors import ConfigError
from farfeed.wan import PRESETS, Link, parse_address, rewrite_url


def test_presets_carry_their_stated_numbers() -> None:
    assert set(PRESETS) == {"local", "tokyo-osaka", "tokyo-fukuoka", "transpacific"}
    assert Link.from_preset("local").rtt == 0.0
    assert Link.from_preset("tokyo-fukuoka").rtt == pytest.approx(0.015)
    assert Link.from_preset("tokyo-fukuoka").bandwidth == pytest.approx(100e9 / 8)
    assert 0.100 <= Link.from_preset("transpacific").rtt <= 0.120
    assert Link.from_preset("tokyo-osaka").rtt < Link.from_preset("tokyo-fukuoka").rtt


def test_from_distance_is_fibre_plus_equipment() -> None:
    assert Link.from_distance(1000).rtt == pytest.approx(0.015)  # the PoC's figure
    assert Link.from_distance(1000, equipment_ms=0).rtt == pytest.approx(2 * 1000 * 4.9e-6)
    assert Link.from_distance(500, bandwidth=1e9).bandwidth == 1e9


@pytest.mark.parametrize(
    ("changes", "quoted"),
    [
        ({"rtt": -0.01}, "-0.01"),
        ({"rtt": float("nan")}, "nan"),
        ({"bandwidth": 0}, "0"),
        ({"window": 10}, "10"),
        ({"window": 4.5e6}, "4500000.0"),
        ({"loss": 1.5}, "1.5"),
        ({"corrupt_rate": -1e-6}, "-1e-06"),
        ({"corrupt_direction": "sideways"}, "'sideways'"),
        ({"jitter": "5ms"}, "'5ms'"),
        ({"handshake": 1}, "1"),
        ({"latency": 0.01}, "latency"),
    ],
)
def test_bad_settings_are_refused_with_the_value(changes: dict[str, object], quoted: str) -> None:
    with pytest.raises(ConfigError, match=quoted.replace("(", r"\(").replace(".", r"\.")):
        Link().with_(**changes)


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="'mars'.*tokyo-fukuoka"):
        Link.from_preset("mars")


def test_round_trip_through_dict_and_describe() -> None:
    link = Link(rtt=0.015, bandwidth=100e9 / 8, jitter=0.001, loss=1e-4, corrupt_rate=1e-6)
    assert Link.from_dict(link.to_dict()) == link
    assert link.describe() == (
        "rtt 15.0 ms, bandwidth 100 Gb/s, window 4096 KiB, jitter 1.0 ms, "
        "loss 0.0001/segment, corrupt 1e-06/byte"
    )


def test_addresses_and_urls() -> None:
    assert parse_address("127.0.0.1:8470") == ("127.0.0.1", 8470)
    assert parse_address("[::1]:9") == ("::1", 9)
    for bad in ("127.0.0.1", "host:port", ":80", "h:70000"):
        with pytest.raises(ConfigError, match=repr(bad).replace(".", r"\.")):
            parse_address(bad)
    address = ("127.0.0.1", 9470)
    assert (
        rewrite_url("http://127.0.0.1:8470/imagenet", address) == "http://127.0.0.1:9470/imagenet"
    )
    assert (
        rewrite_url("https://u:p@store:443/a/b?x=1", address)
        == "https://u:p@127.0.0.1:9470/a/b?x=1"
    )
    with pytest.raises(ConfigError, match="'imagenet'"):
        rewrite_url("imagenet", address)
