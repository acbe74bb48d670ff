"""The Dataset against a storage site as it runs for real: TLS with a private CA, tokens
with scopes. token= / ca_file=, their environment fallbacks and a token in the URL all
reach the index read and every DataLoader worker's batch-gets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.samples import assert_exactly_once
from helpers.secure import SecureSite, secure_gateway

from farfeed.errors import AccessDeniedError, CertificateError, ConfigError
from farfeed.loader import DataLoader, Dataset


@pytest.fixture(scope="module")
def site(image_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureSite]:
    with secure_gateway(image_dataset.parent, tmp_path_factory.mktemp("tls")) as running:
        yield running


def keys_through(ds: Dataset, *, num_workers: int) -> list[str]:
    loader = DataLoader(ds, batch_size=16, num_workers=num_workers)
    return [k for batch in loader for k in batch["__key__"]]


def test_token_and_ca_file_reach_the_index_and_the_workers(site: SecureSite, image_dataset: Path) -> None:
    url = f"{site.url}/{image_dataset.name}"
    ds = Dataset(url, token=site.tokens["read"], ca_file=site.ca_file, seed=1)
    assert_exactly_once(keys_through(ds, num_workers=2), image_dataset)
    assert ds.stats()["retries"] == 0


def test_environment_fallbacks(
    site: SecureSite, image_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{site.url}/{image_dataset.name}"
    monkeypatch.setenv("FARFEED_TOKEN", site.tokens["read"])
    monkeypatch.setenv("SSL_CERT_FILE", str(site.ca_file))
    assert_exactly_once(keys_through(Dataset(url, seed=2), num_workers=0), image_dataset)
    # a token in the URL is that URL's token, before $FARFEED_TOKEN
    monkeypatch.setenv("FARFEED_TOKEN", "not-a-known-token-0123456789")
    authed = url.replace("https://", f"https://:{site.tokens['read,write']}@")
    assert_exactly_once(keys_through(Dataset(authed, seed=3), num_workers=0), image_dataset)
    with pytest.raises(ConfigError, match="has no split 'nope'") as caught:
        Dataset(authed, split="nope")
    assert site.tokens["read,write"] not in str(caught.value)  # messages never show a token


def test_untrusted_certificate_and_missing_token_say_what_to_do(
    site: SecureSite, image_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{site.url}/{image_dataset.name}"
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("FARFEED_TOKEN", raising=False)
    with pytest.raises(CertificateError, match=r"ca_file=PATH .*SSL_CERT_FILE") as caught:
        Dataset(url, token=site.tokens["read"])
    assert "self-signed" in caught.value.reason or "certificate" in caught.value.reason
    with pytest.raises(AccessDeniedError, match="401"):
        Dataset(url, ca_file=site.ca_file)
    with pytest.raises(AccessDeniedError, match="403"):  # a write-only token cannot read
        Dataset(url, token=site.tokens["write"], ca_file=site.ca_file)
