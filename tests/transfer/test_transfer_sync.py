"""`run_sync`: a coroutine's result or exception, from plain code and from inside a running loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from farfeed.errors import NotFoundError
from farfeed.transfer import run_sync


async def _answer(value: int) -> tuple[int, str]:
    await asyncio.sleep(0)
    return value, threading.current_thread().name


def test_returns_the_result_computed_on_its_own_thread() -> None:
    value, thread = run_sync(lambda: _answer(42), name="farfeed-test-sync")
    assert value == 42
    assert thread == "farfeed-test-sync" != threading.current_thread().name


def test_reraises_the_exception_itself() -> None:
    raised = NotFoundError("no such object 'x'", url="mem://x")

    async def fail() -> None:
        await asyncio.sleep(0)
        raise raised

    with pytest.raises(NotFoundError) as info:
        run_sync(fail)
    assert info.value is raised


async def test_works_inside_a_running_event_loop() -> None:
    outer = asyncio.get_running_loop()
    value, _ = run_sync(lambda: _answer(7))
    assert value == 7
    assert asyncio.get_running_loop() is outer and not outer.is_closed()


def test_leaves_the_callers_event_loop_alone() -> None:
    """A caller that set a loop for its thread (and will run it later) keeps it, open."""
    mine = asyncio.new_event_loop()
    asyncio.set_event_loop(mine)
    try:
        assert run_sync(lambda: _answer(1))[0] == 1
        assert asyncio.get_event_loop() is mine and not mine.is_closed()
        assert mine.run_until_complete(_answer(2))[0] == 2
    finally:
        asyncio.set_event_loop(None)
        mine.close()
