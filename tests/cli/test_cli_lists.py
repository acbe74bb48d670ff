"""One convention for list flags: comma-separated values, and the flag may be repeated (both
forms add up); every list flag of every command follows it and says so in --help."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from farfeed.cli import app
from farfeed.cli.lists import LIST_HELP, list_option, names, numbers
from farfeed.errors import ConfigError


def every_option() -> list[tuple[str, Any]]:
    """(command path, option) for every option of every `farfeed` command (typer's own
    click objects: read by their attributes)."""
    found: list[tuple[str, Any]] = []

    def walk(cmd: Any, path: str) -> None:
        found.extend((path, p) for p in cmd.params if p.param_type_name == "option")
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "farfeed")
    return found


def test_every_list_flag_takes_both_forms_and_says_so() -> None:
    options = every_option()
    lists = {(path, p.opts[0]) for path, p in options if p.multiple}
    assert {
        ("farfeed bench io", "--rtt-ms"),
        ("farfeed bench io", "--overload-rtt-ms"),
        ("farfeed bench train", "--rtt-ms"),
        ("farfeed bench wan", "--rtt-ms"),
        ("farfeed bench wan", "--connections"),
        ("farfeed bench checkpoint", "--rtt-ms"),
        ("farfeed bench cpu", "--links"),
        ("farfeed bench cpu", "--modes"),
    } <= lists
    for path, p in options:
        text = (p.help or "").lower()
        if p.multiple:
            assert (p.help or "").endswith(LIST_HELP), f"{path} {p.opts[0]}: help does not state the convention"
        else:  # a single-valued flag must not ask for a list
            assert not re.search(r"comma[- ]separated|repeat (the flag|for)", text), f"{path} {p.opts[0]}"


def test_both_forms_add_up_through_a_real_parse() -> None:
    seen: list[tuple[float, ...]] = []
    demo = typer.Typer()

    @demo.command()
    def sweep(rtt_ms: list[str] = list_option(["0", "15"], "--rtt-ms", help="RTTs, ms.")) -> None:
        seen.append(numbers(rtt_ms, "--rtt-ms"))

    runner = CliRunner()
    for args, want in (
        ([], (0.0, 15.0)),
        (["--rtt-ms", "0,15,50"], (0.0, 15.0, 50.0)),
        (["--rtt-ms", "0", "--rtt-ms", "15", "--rtt-ms", "50"], (0.0, 15.0, 50.0)),
        (["--rtt-ms", "0,15", "--rtt-ms", " 50 "], (0.0, 15.0, 50.0)),
    ):
        result = runner.invoke(demo, args)
        assert result.exit_code == 0, result.output
        assert seen[-1] == want


def test_bad_lists_name_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"--rtt-ms takes numbers .*got \['15', 'x'\]"):
        numbers(["15,x"], "--rtt-ms")
    with pytest.raises(ConfigError, match=r"--connections takes integers >= 1"):
        numbers(["1,0"], "--connections", int, minimum=1)
    with pytest.raises(ConfigError, match="--modes needs at least one name"):
        names([" , "], "--modes")
    assert numbers(["1", "16"], "--connections", int) == (1, 16)
    assert names(["none,tokyo-fukuoka", "5ms"], "--links") == ("none", "tokyo-fukuoka", "5ms")
