"""Split a training state into tensors and a JSON tree, and join them back. No pickle.

A state is nested dicts / lists / tuples of tensors, numpy arrays and plain values
(model and optimizer ``state_dict()``, the loader's ``state_dict()``, RNG states,
scalars). Tensors go to the checkpoint's safetensors file under their key path
(``model/fc.weight``); everything else becomes JSON, with the few values JSON lacks
tagged by a ``"__farfeed__"`` key. Loading never executes code from the store.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from farfeed.errors import CheckpointError, ConfigError

TAG = "__farfeed__"


def flatten(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], Any]:
    """Return (tensors by unique name, JSON-able tree referring to them by name).

    The tensors are the caller's own (not copied); ConfigError names the key path of a
    value that cannot be saved safely.
    """
    if not isinstance(state, Mapping):
        raise ConfigError(f"a checkpoint state must be a mapping, got {type(state).__name__}")
    tensors: dict[str, torch.Tensor] = {}
    tree = _flat(state, "", tensors)
    return tensors, tree


def unflatten(tree: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Rebuild the state from the JSON tree and the loaded tensors (the inverse of `flatten`)."""
    if isinstance(tree, list):
        return [unflatten(v, tensors) for v in tree]
    if not isinstance(tree, dict):
        return tree
    tag = tree.get(TAG)
    if tag is None:
        return {k: unflatten(v, tensors) for k, v in tree.items()}
    if tag == "tensor":
        return _tensor(tree, tensors)
    if tag == "ndarray":
        raw = _tensor(tree, tensors)
        arr = raw.numpy().view(np.dtype(tree["dtype"]))
        return arr.reshape(tree["shape"]).copy()
    if tag == "tuple":
        return tuple(unflatten(v, tensors) for v in tree["items"])
    if tag == "dict":
        return {unflatten(k, tensors): unflatten(v, tensors) for k, v in tree["items"]}
    if tag == "float":
        return float(tree["repr"])
    if tag == "bytes":
        return base64.b64decode(tree["b64"])
    if tag == "dtype":
        return getattr(torch, tree["name"])
    raise CheckpointError(f"checkpoint tree has an unknown tag {tag!r}")


def _tensor(node: dict[str, Any], tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
    try:
        return tensors[node["name"]]
    except KeyError:
        raise CheckpointError(f"checkpoint tree refers to a missing tensor {node.get('name')!r}") from None


def _flat(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {TAG: "float", "repr": repr(value)}
    if isinstance(value, torch.Tensor):
        return {TAG: "tensor", "name": _name(path, tensors, value)}
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise ConfigError(f"cannot checkpoint {path or '<root>'!r}: numpy object arrays are not safe to store")
        raw = torch.from_numpy(np.ascontiguousarray(value).reshape(-1).view(np.uint8))
        name = _name(path, tensors, raw)
        return {TAG: "ndarray", "name": name, "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return _flat(value.item(), path, tensors)
    if isinstance(value, bytes):
        return {TAG: "bytes", "b64": base64.b64encode(value).decode()}
    if isinstance(value, torch.dtype):
        return {TAG: "dtype", "name": str(value).removeprefix("torch.")}
    if isinstance(value, tuple):
        return {TAG: "tuple", "items": [_flat(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_flat(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: _flat(v, _join(path, k), tensors) for k, v in value.items()}
        items = []
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool, tuple)) and k is not None:
                raise ConfigError(f"cannot checkpoint {path or '<root>'!r}: dict key {k!r} is not a plain value")
            items.append([_flat(k, path, tensors), _flat(v, _join(path, str(k)), tensors)])
        return {TAG: "dict", "items": items}
    raise ConfigError(
        f"cannot checkpoint {path or '<root>'!r}: values of type {type(value).__name__} are not supported "
        "(use tensors, numpy arrays, dicts, lists, tuples, str, int, float, bool, None, bytes)"
    )


def _join(path: str, key: str) -> str:
    return f"{path}/{key}" if path else key


def _name(path: str, tensors: dict[str, torch.Tensor], value: torch.Tensor) -> str:
    name = path.lstrip("/") or "tensor"
    base, n = name, 1
    while name in tensors:
        name = f"{base}#{n}"
        n += 1
    tensors[name] = value
    return name
