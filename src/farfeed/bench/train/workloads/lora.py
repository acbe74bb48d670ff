"""LoRA fine-tuning of a base Llama whose weights stay at the storage site (the PoC's 70B job, small).

A base model is a folder holding ``config.json`` (a `LlamaConfig`) and
``model.safetensors``. `publish_base` writes one (random weights, for benchmarks);
`load_base` reads it over the link with `farfeed.weights.load_safetensors` (parallel
range reads, nothing written to local disk) and `wrap_lora` freezes it under peft LoRA.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from farfeed.errors import ConfigError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def publish_base(out: Path, *, size: str, vocab_size: int, seq_len: int, seed: int = 0) -> Path:
    """Write a randomly initialised base Llama to ``out`` (a folder at the storage site)."""
    from safetensors.torch import save_file
    from transformers import LlamaForCausalLM

    from farfeed.bench.train.workloads.llama import llama_config

    config = llama_config(size=size, vocab_size=vocab_size, seq_len=seq_len)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_NAME).write_text(json.dumps(config.to_dict(), indent=1, default=str))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME))
    return out


def load_base(
    url: str,
    *,
    vocab_size: int,
    device: torch.device | str = "cpu",
    store_options: dict[str, Any] | None = None,
) -> tuple[torch.nn.Module, float]:
    """Load the base model at ``url`` over the link; returns (model, seconds it took).

    The config and the weights come with `farfeed.weights` (parallel range reads straight
    into memory on ``device``); the model is built on ``device`` first, so a 1B base
    never makes a CPU round trip on a GPU node.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    from farfeed.weights import load_config, load_into

    started = time.perf_counter()
    config = LlamaConfig.from_dict(load_config(url, store_options=store_options))
    if config.vocab_size != vocab_size:
        raise ConfigError(
            f"base model at {url!r} has vocab_size={config.vocab_size!r}, "
            f"but the token corpus has vocab_size={vocab_size!r}"
        )
    with torch.device(device):
        model = LlamaForCausalLM(config)
    load_into(model, url, store_options=store_options)
    return model, time.perf_counter() - started


def wrap_lora(model: torch.nn.Module, *, rank: int = 8) -> torch.nn.Module:
    """Freeze ``model`` and add LoRA adapters on the attention projections (peft)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        task_type="CAUSAL_LM",
    )
    wrapped: torch.nn.Module = get_peft_model(model, config)  # type: ignore[arg-type]
    return wrapped
