"""Run farfeed's coroutines from plain (synchronous) training code."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def run_sync(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work()`` on a fresh event loop and return its result.

    From a thread that already runs a loop (a notebook), the loop runs in a helper thread.
    """

    async def main() -> T:
        return await work()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()
