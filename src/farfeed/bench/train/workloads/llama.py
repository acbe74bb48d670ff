"""Llama model shapes by name, shared by the language-model and LoRA workloads."""

from __future__ import annotations

from typing import Any

from farfeed.errors import ConfigError

#: name -> (hidden, intermediate, layers, heads, kv_heads)
SIZES: dict[str, tuple[int, int, int, int, int]] = {
    "tiny": (128, 384, 4, 4, 4),
    "small": (256, 688, 6, 8, 8),
    "1b": (2048, 5632, 22, 32, 4),
}


def llama_config(*, size: str, vocab_size: int, seq_len: int) -> Any:
    """The `transformers.LlamaConfig` for a named size, e.g. ``llama_config(size="tiny", ...)``."""
    from transformers import LlamaConfig

    if size not in SIZES:
        raise ConfigError(f"model size must be one of {tuple(SIZES)}, got {size!r}")
    hidden, inter, layers, heads, kv = SIZES[size]
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        max_position_embeddings=max(seq_len, 128),
        tie_word_embeddings=False,
    )
