"""Language modelling: a Llama-architecture model from `transformers` on a packed token corpus.

Sizes: ``tiny`` (~1 M parameters, the CPU demo), ``small`` (~5 M), ``1b`` (the
TinyLlama-1.1B shape, for the GPU recipe). With ``lora_base`` the job is the PoC's
second one in miniature: a base model whose weights come from the storage site, frozen,
with LoRA adapters (peft) trained on top.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from farfeed.bench.train.workloads.base import Batch, Metric, Workload, autocast
from farfeed.bench.train.workloads.llama import SIZES, llama_config
from farfeed.errors import ConfigError


class LlamaWorkload(Workload):
    """Causal language modelling with AdamW; metric: held-out mean next-token loss (nats).

    >>> LlamaWorkload(vocab_size=259, size="tiny", seq_len=128, lr=3e-3)
    """

    name = "llm"
    decode = "tokens"

    def __init__(
        self,
        *,
        vocab_size: int,
        size: str = "tiny",
        seq_len: int = 128,
        lr: float = 3e-3,
        weight_decay: float = 0.1,
        amp: bool = True,
        lora_base: str | None = None,
        lora_rank: int = 8,
        store_options: dict[str, Any] | None = None,
    ) -> None:
        if vocab_size < 2:
            raise ConfigError(f"vocab_size must be >= 2, got {vocab_size!r}")
        if seq_len < 2:
            raise ConfigError(f"seq_len must be >= 2 tokens, got {seq_len!r}")
        if size not in SIZES:
            raise ConfigError(f"model size must be one of {tuple(SIZES)}, got {size!r}")
        if lr <= 0:
            raise ConfigError(f"lr must be > 0, got {lr!r}")
        if lora_rank < 1:
            raise ConfigError(f"lora_rank must be >= 1, got {lora_rank!r}")
        self.vocab_size = vocab_size
        self.size = size
        self.seq_len = seq_len
        self.lr = lr
        self.weight_decay = weight_decay
        self.amp = amp
        self.lora_base = lora_base
        self.lora_rank = lora_rank
        self.store_options = store_options or {}
        self.base_load_seconds: float | None = None

    def dataset_options(self, *, train: bool) -> dict[str, Any]:
        return {"decode": "tokens", "seq_len": self.seq_len}

    def build_model(self, device: torch.device) -> torch.nn.Module:
        if self.lora_base is not None:
            from farfeed.bench.train.workloads.lora import load_base, wrap_lora

            base, seconds = load_base(
                self.lora_base,
                vocab_size=self.vocab_size,
                device=device,
                store_options=self.store_options,
            )
            self.base_load_seconds = seconds
            return wrap_lora(base, rank=self.lora_rank).to(device)
        from transformers import LlamaForCausalLM

        config = llama_config(size=self.size, vocab_size=self.vocab_size, seq_len=self.seq_len)
        with torch.device(device):  # a 1B model initialises in seconds on the GPU, minutes on CPU
            model: torch.nn.Module = LlamaForCausalLM(config)
        return model

    def build_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.AdamW(
            params, lr=self.lr, betas=(0.9, 0.95), weight_decay=self.weight_decay
        )

    def prepare_batch(self, batch: Batch, device: torch.device) -> Batch:
        input_ids, labels = batch[0], batch[1]
        return (
            input_ids.to(device, dtype=torch.long, non_blocking=True),
            labels.to(device, dtype=torch.long, non_blocking=True),
        )

    def loss(self, model: torch.nn.Module, batch: Batch, device: torch.device) -> torch.Tensor:
        input_ids, labels = batch  # labels[i, t] is the token that follows input_ids[i, t]
        with autocast(device, enabled=self.amp):
            logits = model(input_ids=input_ids).logits
        return torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100
        )

    def batch_size_of(self, batch: Batch) -> int:
        return int(batch[0].shape[0])

    @torch.no_grad()
    def evaluate(
        self, model: torch.nn.Module, batches: Iterable[Batch], device: torch.device
    ) -> Metric:
        was_training = model.training
        model.eval()
        total = 0.0
        count = 0
        for raw in batches:
            batch = self.prepare_batch(raw, device)
            total += float(self.loss(model, batch, device)) * batch[0].shape[0]
            count += int(batch[0].shape[0])
        model.train(was_training)
        value = total / count if count else float("nan")
        return Metric(
            "val_loss", value, higher_is_better=False, chance=math.log(self.vocab_size), count=count
        )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "vocab_size": self.vocab_size,
            "seq_len": self.seq_len,
            "lr": self.lr,
            "lora_base": self.lora_base,
            "lora_rank": self.lora_rank if self.lora_base else None,
        }
