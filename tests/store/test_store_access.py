"""`access_options`: one rule for tokens and trust, whatever the entry point (no server here;
the entry points' tests reach real gateways with these options)."""

from __future__ import annotations

from pathlib import Path

import pytest

from farfeed.errors import ConfigError
from farfeed.store.access import CA_FILE_ENV, TOKEN_ENV, access_options, token_in_url

URL = "https://storage.example:8470/imagenet"
TOKEN = "0123456789abcdef0123"


@pytest.fixture
def ca(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")  # only its existence is checked here
    return str(path)


def test_explicit_beats_environment_and_environment_fills_in(ca: str) -> None:
    env = {TOKEN_ENV: "from-the-environment-000", CA_FILE_ENV: ca}
    assert access_options(URL, environ=env) == {"token": env[TOKEN_ENV], "ssl": ca}
    assert access_options(URL, token=TOKEN, ca_file=Path(ca), environ={TOKEN_ENV: "x" * 20}) == {
        "token": TOKEN,
        "ssl": ca,
    }
    # the escape hatch still works, and store options pass through untouched
    opts = access_options(URL, store_options={"token": TOKEN, "ssl": False, "timeout": 5.0}, environ=env)
    assert opts == {"token": TOKEN, "ssl": False, "timeout": 5.0}
    assert access_options(URL, environ={}) == {}


def test_ssl_cert_file_applies_to_https_only(ca: str) -> None:
    env = {CA_FILE_ENV: ca}
    assert "ssl" not in access_options("http://storage:8470/imagenet", environ=env)
    assert "ssl" not in access_options("s3://bucket/imagenet", environ=env)  # S3Store reads AWS_CA_BUNDLE, SSL_CERT_FILE
    assert access_options(["http://a:8470/x", "https://b:8470/x"], environ=env)["ssl"] == ca
    assert access_options("s3://bucket/imagenet", ca_file=ca, environ={})["ssl"] == ca


def test_a_token_in_the_url_must_agree_with_token() -> None:
    authed = f"https://:{TOKEN}@storage.example:8470/imagenet"
    assert token_in_url(authed) == TOKEN
    assert token_in_url(URL) is None and token_in_url("/data/imagenet") is None
    assert access_options(authed, token=TOKEN, environ={}) == {"token": TOKEN}
    with pytest.raises(ConfigError, match="token in the URL") as caught:
        access_options(authed, token="another-token-0123456", environ={})
    assert TOKEN not in str(caught.value)  # the URL is redacted in the message
    # the environment's token fills in for URLs without one; a URL's own token wins there
    assert access_options(authed, environ={TOKEN_ENV: "y" * 20}) == {"token": "y" * 20}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token": TOKEN, "store_options": {"token": "z" * 20}}, "give the token once"),
        ({"token": "  "}, "non-empty string"),
        ({"ca_file": "/no/such/ca.pem"}, r"ca_file='/no/such/ca.pem' is not a readable file"),
        ({"ca_file": "CA", "store_options": {"ssl": False}}, "not both"),
        ({"store_options": {"s3_endpoint": "http://minio:9000"}}, r"unknown store_options \['s3_endpoint'\]"),
    ],
)
def test_bad_settings_fail_early_and_say_why(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        access_options(URL, environ={}, **kwargs)  # type: ignore[arg-type]


def test_a_missing_ssl_cert_file_is_named() -> None:
    with pytest.raises(ConfigError, match=r"\$SSL_CERT_FILE='/gone.pem' is not a readable file"):
        access_options(URL, environ={CA_FILE_ENV: "/gone.pem"})
