"""Checkpoints through a gateway with TLS and tokens: token= / ca_file=, a token in the URL,
the environment fallbacks, and the scopes each call needs (docs: checkpoint README)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from helpers.secure import SecureSite, secure_gateway
from helpers.torch_state import assert_same, tiny_state

import farfeed.checkpoint as ckpt
from farfeed.errors import AccessDeniedError


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureSite]:
    root = tmp_path_factory.mktemp("site")
    (root / "checkpoints").mkdir()
    with secure_gateway(root, tmp_path_factory.mktemp("tls")) as running:
        yield running


def test_each_call_with_the_scopes_it_needs(site: SecureSite) -> None:
    run, ca = f"{site.url}/checkpoints/scopes", site.ca_file
    state = tiny_state()
    info = ckpt.save(state, run, step=1, token=site.tokens["read,write"], ca_file=ca).wait(timeout=60)
    assert info.step == 1
    reader = site.tokens["read"]
    assert_same(state, ckpt.load(run, token=reader, ca_file=ca))
    latest = ckpt.latest(run, verify="full", token=reader, ca_file=ca)
    assert latest is not None and latest.step == 1
    assert [i.step for i in ckpt.list_checkpoints(run, token=reader, ca_file=ca)] == [1]
    # a save reads too (the gateway's info, the run's listing): one scope is not enough
    for scopes in ("read", "write"):
        handle = ckpt.save(state, run, step=2, token=site.tokens[scopes], ca_file=ca)
        with pytest.raises(AccessDeniedError, match="needs a token with both the read and the write scope"):
            handle.wait(timeout=60)
    with pytest.raises(AccessDeniedError, match="403"):
        ckpt.load(run, token=site.tokens["write"], ca_file=ca)
    assert [i.step for i in ckpt.list_checkpoints(run, token=reader, ca_file=ca)] == [1]


def test_token_in_the_url_and_the_environment(site: SecureSite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(site.ca_file))
    monkeypatch.setenv("FARFEED_TOKEN", site.tokens["read"])
    run = f"{site.url}/checkpoints/env"
    authed = run.replace("https://", f"https://:{site.tokens['read,write']}@")
    state = {"w": torch.arange(1000, dtype=torch.float32), "step": 7}
    ckpt.save(state, authed, step=7, background=False)  # the URL's token, before $FARFEED_TOKEN
    assert_same(state, ckpt.load(run))  # $FARFEED_TOKEN (read) and $SSL_CERT_FILE
