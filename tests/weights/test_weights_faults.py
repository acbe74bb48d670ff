"""Weights over a link that drops: a cut shorter than the retry window is ridden out (same
window as the loader and checkpoints); a longer one fails naming the URL and the cause.

    .venv/bin/python -m pytest tests/weights/test_weights_faults.py -q --durations=0
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import safetensors.torch
import torch
from helpers.torch_state import assert_same

from farfeed.errors import TransientError
from farfeed.transfer import Transfer
from farfeed.wan import Link, WanThread
from farfeed.weights import load_safetensors


@pytest.fixture
def weights_url(gateway_root: Path, gateway_url: str) -> Iterator[tuple[str, WanThread, dict[str, torch.Tensor]]]:
    """A 2 MB safetensors file on the gateway, its URL through an emulated link, the tensors."""
    tensors = {"a": torch.randn(300_000), "b": torch.arange(200_000, dtype=torch.int32)}
    folder = gateway_root / "models" / "m"
    folder.mkdir(parents=True)
    safetensors.torch.save_file(tensors, folder / "model.safetensors")
    parts = urlsplit(gateway_url)
    assert parts.hostname is not None and parts.port is not None
    with WanThread(upstream=(parts.hostname, parts.port), link=Link()) as wan:
        yield f"{wan.url_for(gateway_url)}/models/m/model.safetensors", wan, tensors


def test_a_cut_shorter_than_the_window_is_ridden_out(
    weights_url: tuple[str, WanThread, dict[str, torch.Tensor]],
) -> None:
    url, wan, tensors = weights_url
    wan.emulator.cut(mode="reset", duration=1.5)
    t0 = time.monotonic()
    got = load_safetensors(url, transfer=Transfer(min_part=64 * 1024))
    assert time.monotonic() - t0 >= 1.3  # it did wait for the link
    assert_same(tensors, got)


def test_a_cut_longer_than_the_window_names_the_url_and_cause(
    weights_url: tuple[str, WanThread, dict[str, torch.Tensor]],
) -> None:
    url, wan, _ = weights_url
    wan.emulator.cut(mode="reset", duration=3.0)
    t0 = time.monotonic()
    with pytest.raises(TransientError) as info:
        load_safetensors(url, transfer=Transfer(retry_for=0.3))
    assert time.monotonic() - t0 < 2.5
    message = str(info.value)
    assert "gave up after 0.3 s of retries" in message and url.split("/models")[0] in message
    assert "last cause: " in message
