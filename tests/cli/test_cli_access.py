"""`farfeed stream` against a gateway with TLS and tokens: the flags, the environment, and
errors that name the command's flags (not Python arguments)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from helpers.data import packed_images
from helpers.secure import SecureSite, secure_gateway

from farfeed.cli import main


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureSite]:
    root = tmp_path_factory.mktemp("site")
    packed_images(root / "images", train=20, val=2)
    with secure_gateway(root, tmp_path_factory.mktemp("tls")) as running:
        yield running


def farfeed(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """Run the ``farfeed`` console entry point; (exit code, stdout + stderr)."""
    monkeypatch.setattr(sys, "argv", ["farfeed", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_tls_and_token_by_flag_and_by_environment(
    site: SecureSite, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("SSL_CERT_FILE", "FARFEED_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    url = f"{site.url}/images"
    code, out = farfeed(["stream", url, "--no-progress", "--token", site.tokens["read"]], monkeypatch, capsys)
    assert code == 1
    assert "TLS certificate check failed" in out and "--ca-file PATH" in out and "--insecure" in out
    assert "ca_file=" not in out and "store_options" not in out  # Python words stay out of the CLI
    ok = ["stream", url, "--no-progress", "--ca-file", str(site.ca_file), "--token", site.tokens["read"]]
    code, out = farfeed(ok, monkeypatch, capsys)
    assert code == 0, out
    assert "samples" in out
    code, out = farfeed(["stream", url, "--no-progress", "--insecure"], monkeypatch, capsys)
    assert code == 1 and "401" in out  # trust skipped, but no token
    monkeypatch.setenv("SSL_CERT_FILE", str(site.ca_file))
    monkeypatch.setenv("FARFEED_TOKEN", site.tokens["read"])
    code, out = farfeed(["stream", url, "--no-progress"], monkeypatch, capsys)
    assert code == 0, out
