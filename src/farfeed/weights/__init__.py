"""Model weights from the storage site, straight into memory (CPU or GPU), never to disk.

>>> from farfeed.weights import load_safetensors, load_into
>>> tensors = load_safetensors("http://storage:8470/models/llama/model.safetensors.index.json")
>>> report = load_into(model, "http://storage:8470/models/llama")   # transformers / torch
>>> load_adapter(peft_model, "http://storage:8470/adapters/run1")     # peft LoRA adapter

Recipes for transformers and peft are in ``farfeed/checkpoint/README.md``.
"""

from __future__ import annotations

from farfeed.weights.api import LoadReport, load_adapter, load_config, load_into, load_safetensors
from farfeed.weights.fetch import aload_safetensors

__all__ = ["LoadReport", "aload_safetensors", "load_adapter", "load_config", "load_into", "load_safetensors"]
