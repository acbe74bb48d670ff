"""Model weights from the storage site: plain tensors, a torch/transformers model, a peft adapter.

    cfg = farfeed.weights.load_config("http://storage:8470/models/llama")
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**cfg))
    report = farfeed.weights.load_into(model, "http://storage:8470/models/llama")
    farfeed.weights.load_adapter(peft_model, "http://storage:8470/adapters/run1")
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from farfeed.errors import CheckpointError, ConfigError, FormatError
from farfeed.store.access import access_options
from farfeed.transfer.plan import Transfer
from farfeed.transfer.retry import open_retrying, retrying
from farfeed.transfer.sync import run_sync
from farfeed.weights.fetch import aload_safetensors, split_url


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What loading weights into a module did: ``missing``, the keys the module wanted but
    the file lacked; ``unexpected``, the keys the file had that the module does not know;
    ``loaded`` counts the tensors read."""

    missing: list[str]
    unexpected: list[str]
    loaded: int


def load_safetensors(
    url: str,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    token: str | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    store_options: Mapping[str, Any] | None = None,
    connections: int = 16,
    transfer: Transfer | None = None,
) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors model at ``url``, read with parallel range reads.

    ``url``: a ``.safetensors`` file, an index JSON (``model.safetensors.index.json``) of a
    sharded model, or the folder holding either. ``device``: where the tensors end up.
    ``dtype``: cast floating tensors to it (None keeps the stored dtype). ``connections``:
    range reads in flight (default 16). ``transfer``: the link the part size is planned for
    (default 100 Gb/s, 15 ms). Nothing is written to local disk.
    ``token``: the gateway's bearer token, ``read`` scope (else the URL's, else
    ``$FARFEED_TOKEN``); ``ca_file``: a PEM bundle of CAs to trust for https (else
    ``$SSL_CERT_FILE``); ``store_options``: more `farfeed.store.open_store` keyword
    arguments (``s3_*``, ``timeout``...).
    """
    return run_sync(
        lambda: aload_safetensors(
            url,
            device=device,
            dtype=dtype,
            token=token,
            ca_file=ca_file,
            store_options=store_options,
            connections=connections,
            transfer=transfer,
        )
    )


def load_into(
    model: torch.nn.Module,
    url: str,
    *,
    strict: bool = True,
    assign: bool = False,
    dtype: torch.dtype | None = None,
    token: str | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    store_options: Mapping[str, Any] | None = None,
    connections: int = 16,
    transfer: Transfer | None = None,
) -> LoadReport:
    """Load the safetensors weights at ``url`` into ``model`` (a torch or transformers module).

    Tensors are read onto the device of the model's first parameter. Keys the file lacks
    because they are tied to a loaded one (transformers' ``lm_head`` = embeddings) are
    not missing. ``strict``: raise `CheckpointError` on missing or unexpected keys.
    ``assign``: take the loaded tensors as the parameters (for models built on the
    ``meta`` device; ties are restored with ``model.tie_weights()`` when it exists).
    ``dtype``, ``connections``, ``transfer``: as for `load_safetensors`.
    ``token``: the gateway's bearer token, ``read`` scope (else the URL's, else
    ``$FARFEED_TOKEN``); ``ca_file``: a PEM bundle of CAs to trust for https (else
    ``$SSL_CERT_FILE``); ``store_options``: more `farfeed.store.open_store` keyword
    arguments (``s3_*``, ``timeout``...).
    """
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    first = next(model.parameters(), None)
    device = torch.device("cpu") if first is None or first.device.type == "meta" else first.device
    state = load_safetensors(
        url,
        device=device,
        dtype=dtype,
        token=token,
        ca_file=ca_file,
        store_options=store_options,
        connections=connections,
        transfer=transfer,
    )
    result = model.load_state_dict(state, strict=False, assign=assign)
    tie = getattr(model, "tie_weights", None)
    if assign and callable(tie):
        tie()
    missing = [k for k in result.missing_keys if k not in _tied_to(model, state)]
    report = LoadReport(missing, list(result.unexpected_keys), len(state))
    if strict and (report.missing or report.unexpected):
        raise CheckpointError(
            f"weights at {url} do not fit {type(model).__name__}: missing {report.missing[:5]} "
            f"({len(report.missing)}), unexpected {report.unexpected[:5]} ({len(report.unexpected)})"
        )
    return report


def load_adapter(
    model: torch.nn.Module,
    url: str,
    *,
    adapter_name: str = "default",
    token: str | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    store_options: Mapping[str, Any] | None = None,
    connections: int = 16,
) -> LoadReport:
    """Load a peft adapter at ``url`` (``adapter_model.safetensors``, or its folder) into
    ``model``, a peft model; ``connections``: range reads in flight.

    The weights go through `peft.set_peft_model_state_dict`, which maps the saved names
    onto ``adapter_name``; the report lists LoRA weights of that adapter left unloaded and
    the saved keys peft did not place.
    ``token``: the gateway's bearer token, ``read`` scope (else the URL's, else
    ``$FARFEED_TOKEN``); ``ca_file``: a PEM bundle of CAs to trust for https (else
    ``$SSL_CERT_FILE``); ``store_options``: more `farfeed.store.open_store` keyword
    arguments (``s3_*``, ``timeout``...).
    """
    from peft import set_peft_model_state_dict

    src = split_url(url)
    target = url if src.name is not None else f"{src.root}/adapter_model.safetensors"
    first = next(model.parameters(), None)
    device = torch.device("cpu") if first is None else first.device
    state = load_safetensors(
        target,
        device=device,
        token=token,
        ca_file=ca_file,
        store_options=store_options,
        connections=connections,
    )
    result = set_peft_model_state_dict(model, state, adapter_name=adapter_name)
    # peft reports every base-model weight as missing: keep only this adapter's own
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k and f".{adapter_name}." in k]
    return LoadReport(missing, list(getattr(result, "unexpected_keys", [])), len(state))


def load_config(
    url: str,
    *,
    name: str = "config.json",
    token: str | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    store_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A model folder's JSON config, read remotely: the file ``name`` (``config.json``,
    ``adapter_config.json``...) in the folder ``url``.

    ``token``: the gateway's bearer token, ``read`` scope (else the URL's, else
    ``$FARFEED_TOKEN``); ``ca_file``: a PEM bundle of CAs to trust for https (else
    ``$SSL_CERT_FILE``); ``store_options``: more `farfeed.store.open_store` keyword
    arguments (``s3_*``, ``timeout``...).
    """
    src = split_url(url)
    access = access_options(src.root, token=token, ca_file=ca_file, store_options=store_options)

    async def work() -> dict[str, Any]:
        async with open_retrying(src.root, **access) as store:
            raw = await retrying(lambda: store.read(name), what=f"reading {src.root}/{name}")
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"{src.root}/{name} is not JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise FormatError(f"{src.root}/{name} is not a JSON object")
        return doc

    return run_sync(work)


def _tied_to(model: torch.nn.Module, loaded: Mapping[str, torch.Tensor]) -> set[str]:
    """Parameter names that are the same tensor as a parameter whose name was loaded."""
    groups: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    tied: set[str] = set()
    for names in groups.values():
        if len(names) > 1 and any(n in loaded for n in names):
            tied.update(n for n in names if n not in loaded)
    return tied
