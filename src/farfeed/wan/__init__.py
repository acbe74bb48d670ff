"""farfeed.wan: a faithful userspace emulator of a long-distance link (`farfeed wan`).

>>> from farfeed.wan import Link, WanThread
>>> with WanThread(upstream=("127.0.0.1", 8470), link=Link.from_preset("tokyo-fukuoka")) as wan:
...     url = wan.url_for("http://127.0.0.1:8470/imagenet")

`WanEmulator` is the asyncio proxy; `WanThread` runs it on its own loop in a thread,
`WanProcess` in a child process (keeps its CPU off the caller's GIL).
"""

from farfeed.wan.address import format_address, parse_address, rewrite_url
from farfeed.wan.cuts import CutMode
from farfeed.wan.emulator import WanEmulator
from farfeed.wan.link import EQUIPMENT_MS, FIBRE_S_PER_KM, PRESET_DISTANCE_KM, PRESETS, Link
from farfeed.wan.process import WanProcess
from farfeed.wan.stats import WanStats
from farfeed.wan.thread import WanThread

__all__ = [
    "EQUIPMENT_MS",
    "FIBRE_S_PER_KM",
    "PRESETS",
    "PRESET_DISTANCE_KM",
    "CutMode",
    "Link",
    "WanEmulator",
    "WanProcess",
    "WanStats",
    "WanThread",
    "format_address",
    "parse_address",
    "rewrite_url",
]
