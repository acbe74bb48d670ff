"""The state <-> (tensors, JSON tree) split: every supported value survives, others are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.torch_state import assert_same, tiny_state

from farfeed.checkpoint.tree import flatten, unflatten
from farfeed.errors import ConfigError


def test_round_trip_keeps_every_value_and_type() -> None:
    state = tiny_state()
    tensors, tree = flatten(state)
    text = json.dumps(tree, allow_nan=False)  # the tree is strict JSON
    assert "model/0.weight" in tensors and "optim/state/0/exp_avg" in tensors
    assert_same(state, unflatten(json.loads(text), tensors))


def test_colliding_names_stay_distinct() -> None:
    state = {"a/b": torch.ones(1), "a": {"b": torch.zeros(1)}}
    tensors, tree = flatten(state)
    assert len(tensors) == 2
    back = unflatten(tree, tensors)
    assert back["a/b"].item() == 1 and back["a"]["b"].item() == 0


@pytest.mark.parametrize(
    ("value", "needle"),
    [(object(), "object"), (Path("/x"), "PosixPath"), ({"k": {1.5j}}, "set")],
)
def test_unsupported_values_are_named_with_their_path(value: object, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as info:
        flatten({"outer": {"inner": value}})
    assert "outer/inner" in str(info.value) or "outer" in str(info.value)


def test_state_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        flatten([torch.ones(1)])  # type: ignore[arg-type]
