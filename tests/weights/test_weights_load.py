"""Model weights from the gateway: sharded safetensors equal a local load bit for bit, and go
into transformers models and peft adapters without touching local disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch
from helpers.torch_state import assert_same

from farfeed.errors import CheckpointError, FormatError
from farfeed.weights import load_adapter, load_config, load_into, load_safetensors

transformers = pytest.importorskip("transformers")


def _tiny_llama(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=128, tie_word_embeddings=True,
    )
    return transformers.LlamaForCausalLM(cfg)


@pytest.fixture
def model_dir(gateway_root: Path) -> Path:
    """A tiny Llama saved as 3+ safetensors shards with transformers' index, under the gateway root."""
    folder = gateway_root / "models" / "llama"
    _tiny_llama(0).to(torch.bfloat16).save_pretrained(folder, max_shard_size="20KB")
    return folder


def _local(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(safetensors.torch.load_file(f))
    return out




def test_sharded_remote_load_equals_local_bit_for_bit(gateway_url: str, model_dir: Path) -> None:
    assert len(list(model_dir.glob("*.safetensors"))) >= 3
    local = _local(model_dir)
    for url in (f"{gateway_url}/models/llama", f"{gateway_url}/models/llama/model.safetensors.index.json"):
        remote = load_safetensors(url, connections=8)
        assert list(sorted(remote)) == list(sorted(local))
        assert_same(dict(sorted(local.items())), dict(sorted(remote.items())))
    shard = sorted(model_dir.glob("model-*.safetensors"))[1]
    one = load_safetensors(f"{gateway_url}/models/llama/{shard.name}", dtype=torch.float32)
    assert one and all(t.dtype == torch.float32 for t in one.values())
    assert_same({k: v.float() for k, v in safetensors.torch.load_file(shard).items()}, one)


def test_load_into_transformers_model_matches_original(gateway_url: str, model_dir: Path) -> None:
    url = f"{gateway_url}/models/llama"
    cfg = transformers.LlamaConfig(**load_config(url))
    fresh = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16)
    report = load_into(fresh, url)
    assert report.missing == [] and report.unexpected == [] and report.loaded == len(_local(model_dir))
    original = _tiny_llama(0).to(torch.bfloat16)
    ids = torch.randint(0, 128, (1, 6))
    assert torch.equal(original(ids).logits, fresh(ids).logits)


def test_load_into_names_keys_that_do_not_fit(gateway_url: str, model_dir: Path) -> None:
    wrong = torch.nn.Linear(3, 3)
    with pytest.raises(CheckpointError, match="missing.*weight.*unexpected"):
        load_into(wrong, f"{gateway_url}/models/llama")
    report = load_into(wrong, f"{gateway_url}/models/llama", strict=False)
    assert report.missing == ["weight", "bias"] and report.unexpected


def test_peft_adapter_from_the_gateway(gateway_root: Path, gateway_url: str) -> None:
    peft = pytest.importorskip("peft")
    lora = peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    trained = peft.get_peft_model(_tiny_llama(0), lora)
    with torch.no_grad():
        for name, p in trained.named_parameters():
            if "lora_B" in name:
                p.normal_()  # a freshly made adapter is a no-op; make this one matter
    trained.save_pretrained(gateway_root / "adapters" / "a1")
    fresh = peft.get_peft_model(_tiny_llama(0), lora)
    report = load_adapter(fresh, f"{gateway_url}/adapters/a1")
    assert report.missing == [] and report.unexpected == [] and report.loaded == 8
    ids = torch.randint(0, 128, (1, 6))
    assert torch.equal(trained(ids).logits, fresh(ids).logits)


def test_not_a_safetensors_file_is_named(gateway_root: Path, gateway_url: str) -> None:
    bad = gateway_root / "models" / "bad"
    bad.mkdir(parents=True)
    (bad / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(FormatError, match="model.safetensors"):
        load_safetensors(f"{gateway_url}/models/bad")
