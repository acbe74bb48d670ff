"""`run_sync`: run farfeed's coroutines from plain (synchronous) training code."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from farfeed.store.threads import tls_thread

T = TypeVar("T")


def run_sync(work: Callable[[], Awaitable[T]], *, name: str = "farfeed-sync") -> T:
    """Run ``work()`` to completion on a fresh event loop and return its result.

    The loop runs in a helper thread, so this works the same from plain code, from a
    thread that already runs a loop (a notebook, an async trainer), and never changes
    the caller's event-loop state. Exceptions are re-raised here.

    >>> size = run_sync(lambda: store.size("dataset.json"))
    """

    async def main() -> T:
        return await work()

    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(main()))
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            error.append(exc)

    thread = tls_thread(target, name=name, daemon=None)  # a fork waits for its end
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
