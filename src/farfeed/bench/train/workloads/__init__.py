"""Training workloads for `farfeed bench train`: image classification and language modelling.

`make_workload` turns a `TrainConfig` plus what the dataset says about itself (classes,
vocabulary) into a `Workload`.
"""

from __future__ import annotations

from farfeed.bench.train.workloads.base import Metric, Workload, autocast
from farfeed.bench.train.workloads.llm import LlamaWorkload
from farfeed.bench.train.workloads.resnet import ResNetWorkload

#: Names accepted by ``--workload``.
WORKLOADS = ("resnet", "llm")

__all__ = ["WORKLOADS", "LlamaWorkload", "Metric", "ResNetWorkload", "Workload", "autocast"]
