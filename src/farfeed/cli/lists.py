"""List flags, one convention for the whole CLI: comma-separated values, and the flag may be
repeated; both forms add up, in order.

    farfeed bench io --rtt-ms 0,15,50        # these three are the same list
    farfeed bench io --rtt-ms 0 --rtt-ms 15 --rtt-ms 50
    farfeed bench io --rtt-ms 0,15 --rtt-ms 50

A command declares such a flag with `list_option` and reads it with `numbers` or `names`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import typer

from farfeed.errors import ConfigError

#: Appended to every list flag's help, so `--help` states the convention everywhere.
LIST_HELP = " Comma-separated, or repeat the flag."


def list_option(default: Sequence[str], *flags: str, help: str) -> Any:
    """A repeatable typer option whose values may hold commas (read it with `numbers` or
    `names`); ``default`` is the list used when the flag is not given."""
    return typer.Option(
        list(default),
        *flags,
        help=help + LIST_HELP,
        metavar="A,B,...",
        show_default=",".join(default) or False,
    )


def split(values: Sequence[str]) -> list[str]:
    """``["0,15", "50"]`` -> ``["0", "15", "50"]``: every value of every occurrence, trimmed."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def numbers(
    values: Sequence[str], flag: str, kind: Callable[[str], Any] = float, *, minimum: float = 0
) -> tuple[Any, ...]:
    """The flag's values as numbers (``kind``: float or int), each >= ``minimum``; a
    `ConfigError` quoting the flag and what was given otherwise (an empty list included)."""
    parts = split(values)
    what = "integers" if kind is int else "numbers"
    try:
        out = tuple(kind(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{flag} takes {what} (comma-separated, or repeat {flag}), got {parts!r}") from None
    if not out or any(v < minimum for v in out):
        raise ConfigError(f"{flag} takes {what} >= {minimum:g} (comma-separated, or repeat {flag}), got {parts!r}")
    return out


def names(values: Sequence[str], flag: str) -> tuple[str, ...]:
    """The flag's values as names; a `ConfigError` when there are none."""
    out = tuple(split(values))
    if not out:
        raise ConfigError(f"{flag} needs at least one name (comma-separated, or repeat {flag})")
    return out
