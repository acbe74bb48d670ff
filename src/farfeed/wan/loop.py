"""The event loop the emulator runs on: uvloop's when it is installed (faster), else asyncio's."""

from __future__ import annotations

import asyncio


def fast_event_loop() -> asyncio.AbstractEventLoop:
    """A new uvloop loop when uvloop is installed, else a new asyncio default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
