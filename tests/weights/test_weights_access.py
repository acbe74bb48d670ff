"""Weights from a gateway with TLS and tokens: token= / ca_file=, a token in the URL, the
environment fallbacks; reading weights needs the read scope only."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import safetensors.torch
import torch
from helpers.secure import SecureSite, secure_gateway
from helpers.torch_state import assert_same

from farfeed.errors import AccessDeniedError
from farfeed.weights import load_config, load_safetensors

TENSORS = {"embed.weight": torch.randn(64, 16), "head.bias": torch.arange(16, dtype=torch.int32)}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureSite]:
    root = tmp_path_factory.mktemp("site")
    model = root / "models" / "tiny"
    model.mkdir(parents=True)
    safetensors.torch.save_file(TENSORS, model / "model.safetensors")
    (model / "config.json").write_text(json.dumps({"hidden_size": 16}))
    with secure_gateway(root, tmp_path_factory.mktemp("tls")) as running:
        yield running


def test_token_and_ca_file(site: SecureSite) -> None:
    url = f"{site.url}/models/tiny"
    assert_same(TENSORS, load_safetensors(url, token=site.tokens["read"], ca_file=site.ca_file))
    assert load_config(url, token=site.tokens["read"], ca_file=site.ca_file) == {"hidden_size": 16}
    with pytest.raises(AccessDeniedError, match="403"):
        load_safetensors(url, token=site.tokens["write"], ca_file=site.ca_file)


def test_token_in_the_url_and_the_environment(site: SecureSite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(site.ca_file))
    authed = f"{site.url}/models/tiny/model.safetensors".replace("https://", f"https://:{site.tokens['read']}@")
    assert_same(TENSORS, load_safetensors(authed))
    monkeypatch.setenv("FARFEED_TOKEN", site.tokens["read"])
    assert load_config(f"{site.url}/models/tiny") == {"hidden_size": 16}
