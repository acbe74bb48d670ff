"""`farfeed serve` (``python -m farfeed.server``): unsafe or bad setups exit 1 with one line; --help."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from farfeed.server.__main__ import main


def _cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    """``python -m farfeed.server ARGS`` in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["farfeed-server", *args])
    with pytest.raises(SystemExit) as stopped:
        main()
    out = capsys.readouterr()
    return int(stopped.value.code or 0), out.out, out.err


def test_cli_refuses_unsafe_or_bad_setups(
    gateway_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_tokens = tmp_path / "tokens"
    bad_tokens.write_text("x" * 32 + " read\n" + "y" * 32 + " sudo\n")
    for args, words in (
        (["--host", "0.0.0.0", "--port", "0"], "--allow-anonymous"),
        (["--tokens", str(bad_tokens), "--port", "0"], "line 2"),
        (["--cert", str(bad_tokens), "--port", "0"], "--key"),
        (["--workers", "0", "--port", "0"], "--workers"),
    ):
        code, out, err = _cli(capsys, monkeypatch, str(gateway_root), *args)
        lines = err.strip().splitlines()
        assert code == 1 and out == "" and len(lines) == 1, err
        assert lines[0].startswith("farfeed: error:") and words in lines[0], err
    code, _, err = _cli(capsys, monkeypatch, str(tmp_path / "missing"))
    assert code == 1 and "ROOT" in err
    assert os.listdir(gateway_root) == ["checkpoints"]


def test_help_teaches_the_options(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = _cli(capsys, monkeypatch, "--help")
    assert code == 0
    for option in ("--host", "--port", "--tokens", "--cert", "--key", "--allow-anonymous", "--workers", "--access-log"):
        assert option in out
    assert "8470" in out and "SO_REUSEPORT" in out
