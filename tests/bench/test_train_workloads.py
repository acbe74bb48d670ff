"""The workloads: real torchvision / transformers models on real tensors."""

from __future__ import annotations

import math

import pytest
import torch

from farfeed.bench.train.workloads import LlamaWorkload, ResNetWorkload
from farfeed.bench.train.workloads.base import warmup_cosine
from farfeed.errors import ConfigError

CPU = torch.device("cpu")


def test_resnet_small_stem_learns_one_batch() -> None:
    torch.manual_seed(0)
    work = ResNetWorkload(classes=4, arch="resnet18", image_size=32, lr=0.05)
    model = work.build_model(CPU)
    assert model.conv1.stride == (1, 1)  # type: ignore[union-attr]
    opt = work.build_optimizer(model)
    images, labels = torch.randn(8, 3, 32, 32), torch.arange(8) % 4
    batch = work.prepare_batch((images, labels), CPU)
    first = float(work.loss(model, batch, CPU).detach())
    for _ in range(8):
        loss = work.loss(model, batch, CPU)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(work.loss(model, batch, CPU).detach()) < first
    metric = work.evaluate(model, [(images, labels)], CPU)
    assert metric.name == "val_accuracy" and metric.count == 8 and metric.chance == 0.25
    assert 0.0 <= metric.value <= 1.0


def test_resnet_at_224_keeps_the_imagenet_stem() -> None:
    model = ResNetWorkload(classes=10, arch="resnet18", image_size=224).build_model(CPU)
    assert model.conv1.stride == (2, 2)  # type: ignore[union-attr]


def test_llama_loss_starts_near_log_vocab_and_falls() -> None:
    torch.manual_seed(0)
    work = LlamaWorkload(vocab_size=257, size="tiny", seq_len=32, lr=3e-3)
    model = work.build_model(CPU)
    params = sum(p.numel() for p in model.parameters())
    assert 0.5e6 < params < 3e6
    tokens = torch.randint(0, 257, (4, 33))
    batch = work.prepare_batch((tokens[:, :-1], tokens[:, 1:]), CPU)
    first = float(work.loss(model, batch, CPU).detach())
    assert abs(first - math.log(257)) < 0.5
    opt = work.build_optimizer(model)
    for _ in range(5):
        loss = work.loss(model, batch, CPU)
        opt.zero_grad()
        loss.backward()
        opt.step()
    metric = work.evaluate(model, [batch], CPU)
    assert metric.name == "val_loss" and metric.value < first


@pytest.mark.parametrize(
    ("make", "quoted"),
    [
        (lambda: ResNetWorkload(classes=10, arch="vgg16"), "'vgg16'"),
        (lambda: ResNetWorkload(classes=1), "classes=1"),
        (lambda: LlamaWorkload(vocab_size=257, size="huge"), "'huge'"),
        (lambda: LlamaWorkload(vocab_size=257, lora_rank=0), "0"),
    ],
)
def test_bad_workload_settings_are_refused(make: object, quoted: str) -> None:
    with pytest.raises(ConfigError, match=quoted):
        make()  # type: ignore[operator]


def test_schedule_warms_up_then_decays_to_the_floor() -> None:
    factor = warmup_cosine(100)
    assert factor(0) == pytest.approx(0.1)
    assert factor(9) == pytest.approx(1.0)
    assert factor(50) < factor(10)
    assert factor(99) == pytest.approx(0.1, abs=0.01)
