"""Image classification: a torchvision ResNet on packed image shards (the PoC's ResNet-50 job).

On CPU the demo trains ``resnet18`` at 64 px with a 3x3 stride-1 stem (a 7x7 stride-2
stem would leave 2x2 feature maps); on GPU the recipe trains ``resnet50`` at 224 with
bf16 autocast and channels_last. SGD with momentum, as MLPerf's reference does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torchvision

from farfeed.bench.train.workloads.base import Batch, Metric, Workload, autocast
from farfeed.errors import ConfigError

#: Architectures this workload accepts (torchvision constructors).
ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101")

#: Below this input size the stem is adapted for small images (3x3 stride-1 conv).
SMALL_IMAGE = 128


class ResNetWorkload(Workload):
    """A torchvision ResNet trained with SGD+momentum; metric: held-out top-1 accuracy.

    >>> ResNetWorkload(classes=10, arch="resnet18", image_size=64, lr=0.05)
    """

    name = "resnet"
    decode = "image"

    def __init__(
        self,
        *,
        classes: int,
        arch: str = "resnet18",
        image_size: int = 64,
        lr: float = 0.05,
        momentum: float = 0.9,
        weight_decay: float = 5e-5,
        amp: bool = True,
        channels_last: bool = True,
    ) -> None:
        if arch not in ARCHS:
            raise ConfigError(f"arch must be one of {ARCHS}, got {arch!r}")
        if classes < 2:
            raise ConfigError(f"an image dataset needs >= 2 classes, got classes={classes!r}")
        if image_size < 16:
            raise ConfigError(f"image_size must be >= 16 pixels, got {image_size!r}")
        if lr <= 0:
            raise ConfigError(f"lr must be > 0, got {lr!r}")
        self.classes = classes
        self.arch = arch
        self.image_size = image_size
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.amp = amp
        self.channels_last = channels_last

    def dataset_options(self, *, train: bool) -> dict[str, Any]:
        return {"decode": "image", "image_size": self.image_size, "train": train}

    def build_model(self, device: torch.device) -> torch.nn.Module:
        model: torch.nn.Module = getattr(torchvision.models, self.arch)(
            num_classes=self.classes, zero_init_residual=True
        )
        if self.image_size < SMALL_IMAGE:
            model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model = model.to(device)
        if self._use_channels_last(device):
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return model

    def build_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            model.parameters(),
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            nesterov=True,
        )

    def prepare_batch(self, batch: Batch, device: torch.device) -> Batch:
        images, labels = batch[0], batch[1]
        images = images.to(device, non_blocking=True)
        if self._use_channels_last(device):
            images = images.contiguous(memory_format=torch.channels_last)
        return images, torch.as_tensor(labels).to(device, non_blocking=True)

    def loss(self, model: torch.nn.Module, batch: Batch, device: torch.device) -> torch.Tensor:
        images, labels = batch
        with autocast(device, enabled=self.amp):
            logits = model(images)
        return torch.nn.functional.cross_entropy(logits.float(), labels)

    def batch_size_of(self, batch: Batch) -> int:
        return int(batch[0].shape[0])

    @torch.no_grad()
    def evaluate(
        self, model: torch.nn.Module, batches: Iterable[Batch], device: torch.device
    ) -> Metric:
        was_training = model.training
        model.eval()
        correct = total = 0
        for raw in batches:
            images, labels = self.prepare_batch(raw, device)
            with autocast(device, enabled=self.amp):
                logits = model(images)
            correct += int((logits.argmax(dim=1) == labels).sum())
            total += int(labels.numel())
        model.train(was_training)
        accuracy = correct / total if total else float("nan")
        return Metric(
            "val_accuracy", accuracy, higher_is_better=True, chance=1.0 / self.classes, count=total
        )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arch": self.arch,
            "classes": self.classes,
            "image_size": self.image_size,
            "lr": self.lr,
            "momentum": self.momentum,
            "small_image_stem": self.image_size < SMALL_IMAGE,
        }

    def _use_channels_last(self, device: torch.device) -> bool:
        return self.channels_last and device.type == "cuda"
