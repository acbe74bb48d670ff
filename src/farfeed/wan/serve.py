"""Run an emulator until told to stop: the body of `farfeed wan` and of `WanProcess`.

Prints ``farfeed wan listening on HOST:PORT -> UPSTREAM (link)`` first, then stats
every ``stats_every`` seconds. With ``control=True`` it also obeys JSON commands, one
per line on stdin, answering one JSON line each on stdout (stats then go to stderr);
stdin closing stops it, so a child never outlives its parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import Any, TextIO

from farfeed.errors import ConfigError, FarfeedError
from farfeed.wan.address import format_address
from farfeed.wan.cuts import Cut, CutMode, CutPlan
from farfeed.wan.emulator import WanEmulator
from farfeed.wan.link import Link
from farfeed.wan.loop import fast_event_loop

#: The first line on stdout; `WanProcess` reads the address after it.
BANNER = "farfeed wan listening on "


def run_wan(
    *,
    upstream: tuple[str, int],
    link: Link,
    listen: tuple[str, int] = ("127.0.0.1", 0),
    stats_every: float = 5.0,
    cut_every: float | None = None,
    cut_mode: CutMode = "reset",
    cut_duration: float = 0.0,
    control: bool = False,
) -> None:
    """Serve until Ctrl-C / SIGTERM (or stdin EOF with ``control``); print stats at the end."""
    if not isinstance(stats_every, (int, float)) or stats_every < 0:
        raise ConfigError(f"stats interval must be >= 0 seconds (0: off), got {stats_every!r}")
    cut = Cut(mode=cut_mode, duration=cut_duration)
    cuts = None if cut_every is None else CutPlan.periodic(cut_every, cut)
    emulator = WanEmulator(upstream=upstream, link=link, listen=listen)
    loop = fast_event_loop()
    try:
        loop.run_until_complete(
            _serve(emulator, stats_every=stats_every, cuts=cuts, control=control)
        )
    finally:
        loop.close()


async def _serve(
    emulator: WanEmulator,
    *,
    stats_every: float,
    cuts: CutPlan | None,
    control: bool,
) -> None:
    await emulator.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    log: TextIO = sys.stderr if control else sys.stdout
    print(
        f"{BANNER}{format_address(emulator.address)} -> "
        f"{format_address(emulator.upstream)} ({emulator.link.describe()})",
        flush=True,
    )
    if cuts is not None:
        emulator.plan_cuts(cuts)
    tasks = []
    if stats_every > 0:
        tasks.append(asyncio.ensure_future(_print_stats(emulator, stats_every, log)))
    if control:
        tasks.append(asyncio.ensure_future(_control(emulator, stop)))
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await emulator.stop()
        print(f"farfeed wan stopped: {emulator.stats().describe()}", file=log, flush=True)


async def _print_stats(emulator: WanEmulator, every: float, log: TextIO) -> None:
    while True:
        await asyncio.sleep(every)
        print(f"wan: {emulator.stats().describe()}", file=log, flush=True)


async def _control(emulator: WanEmulator, stop: asyncio.Event) -> None:
    """Obey JSON lines on stdin; answer each with one JSON line on stdout."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            try:
                reply: dict[str, Any] = {
                    "ok": True,
                    "result": _command(emulator, stop, json.loads(line)),
                }
            except (FarfeedError, ValueError, TypeError, KeyError) as exc:
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
    finally:
        stop.set()


def _command(emulator: WanEmulator, stop: asyncio.Event, message: Any) -> Any:
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ConfigError(f"control message must be an object with an 'op', got {message!r}")
    op = message["op"]
    args = message.get("args", {})
    if op == "stats":
        return emulator.stats().to_dict()
    if op == "update":
        return emulator.update(**args).to_dict()
    if op == "set_link":
        emulator.set_link(Link.from_dict(args))
        return emulator.link.to_dict()
    if op == "cut":
        emulator.cut(**args)
        return None
    if op == "schedule_cut":
        emulator.schedule_cut(**args)
        return None
    if op == "stop":
        stop.set()
        return None
    raise ConfigError(f"unknown control op {op!r}")
