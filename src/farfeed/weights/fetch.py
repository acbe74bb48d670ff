"""Read safetensors weights from the storage site with parallel range reads, into memory.

A model is one ``.safetensors`` file, or shards listed by an index JSON
(``model.safetensors.index.json``: ``{"weight_map": {tensor name: shard file}}``, the
format transformers writes). We read each shard's header (one small range read), then
its data section in parts over many connections, each part copied straight into the
tensors it covers (then moved to the target device). Nothing touches disk.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from farfeed.errors import ConfigError, FormatError, NotFoundError
from farfeed.format import safetensors as stlayout
from farfeed.store.access import access_options
from farfeed.store.base import Store
from farfeed.transfer.plan import Transfer
from farfeed.transfer.retry import DEFAULT_RETRY, RetryPolicy, open_retrying, retrying
from farfeed.transfer.safetensors import read_safetensors_header
from farfeed.transfer.scatter import Scatter

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


@dataclass(frozen=True, slots=True)
class WeightFiles:
    """Where a model's weights are: the store root and the files to read from it."""

    root: str
    #: The index file, the single file, or None to look inside ``root``.
    name: str | None


def split_url(url: str) -> WeightFiles:
    """A file URL becomes (its folder, its name); anything else is a folder to look in."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"weights url must be a non-empty string, got {url!r}")
    trimmed = url.rstrip("/")
    if trimmed.endswith((".safetensors", ".json")):
        root, sep, name = trimmed.rpartition("/")
        if not sep:
            root = "."
        return WeightFiles(root or "/", name)
    return WeightFiles(trimmed, None)


async def shard_files(
    store: Store, src: WeightFiles, *, policy: RetryPolicy = DEFAULT_RETRY
) -> tuple[list[str], dict[str, str] | None]:
    """The shard files to read and, when an index exists, its tensor -> file map."""
    name = src.name
    if name is None:
        listing = await retrying(lambda: store.list(""), what=f"listing {src.root}", policy=policy)
        names = {o.path for o in listing if "/" not in o.path}
        if INDEX in names:
            name = INDEX
        elif SINGLE in names:
            name = SINGLE
        else:
            found = sorted(n for n in names if n.endswith(".safetensors"))
            if not found:
                raise NotFoundError(f"no .safetensors file or {INDEX} in {src.root}")
            return found, None
    if not name.endswith(".json"):
        return [name], None
    index_name = name
    raw = await retrying(lambda: store.read(index_name), what=f"reading {src.root}/{name}", policy=policy)
    try:
        weight_map = json.loads(raw)["weight_map"]
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise TypeError("weight_map must map names to file names")
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise FormatError(f"{src.root}/{name}: not a safetensors index ({exc})") from None
    return sorted(set(weight_map.values())), weight_map


async def fetch_shard(
    store: Store,
    name: str,
    header: stlayout.Header,
    *,
    part_size: int,
    gate: asyncio.Semaphore,
    where: str,
    pin: bool = False,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> dict[str, torch.Tensor]:
    """The shard's tensors in host memory, its data section read in parts of ``part_size``
    (each part copied straight into the tensors it covers; each read retried by ``policy``)."""
    scatter = Scatter(header.entries, base=header.data_start, pin=pin)
    end = header.file_size

    async def one(off: int) -> None:
        length = min(part_size, end - off)
        async with gate:
            blob = await retrying(lambda: store.read(name, off, length), what=f"reading {where}", policy=policy)
        if len(blob) != length:
            raise FormatError(f"{where}: read {len(blob)} of {length} bytes at {off}")
        scatter.put(off, blob)

    await asyncio.gather(*(one(off) for off in range(header.data_start, end, part_size)))
    return scatter.tensors


def to_target(t: torch.Tensor, *, device: torch.device, dtype: torch.dtype | None) -> torch.Tensor:
    """Cast floating tensors to ``dtype`` (integers keep theirs) and move to ``device``."""
    if dtype is not None and t.is_floating_point() and t.dtype != dtype:
        t = t.to(dtype)
    return t if t.device == device else t.to(device)


async def aload_safetensors(
    url: str,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    token: str | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    store_options: Mapping[str, Any] | None = None,
    connections: int = 16,
    transfer: Transfer | None = None,
) -> dict[str, torch.Tensor]:
    """Async form of `farfeed.weights.load_safetensors`, for code already in an event loop.

    ``url``, ``device``, ``dtype``, ``token``, ``ca_file``, ``store_options``,
    ``connections`` and ``transfer`` mean what they mean there.
    """
    if not isinstance(connections, int) or connections < 1:
        raise ConfigError(f"connections must be an int >= 1, got {connections!r}")
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise ConfigError(f"dtype must be a torch.dtype or None, got {dtype!r}")
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must name a torch device, got {device!r}") from None
    src = split_url(url)
    plan = transfer or Transfer()
    opts = access_options(src.root, token=token, ca_file=ca_file, store_options=store_options)
    opts.setdefault("connections", connections)
    async with open_retrying(src.root, policy=plan.retry, **opts) as store:
        files, weight_map = await shard_files(store, src, policy=plan.retry)
        sizes = await asyncio.gather(
            *(retrying(functools.partial(store.size, f), what=f"size of {f}", policy=plan.retry) for f in files)
        )
        headers = [
            header
            for _, header in await asyncio.gather(
                *(
                    read_safetensors_header(store, f, size=s, where=f"{src.root}/{f}", policy=plan.retry)
                    for f, s in zip(files, sizes, strict=True)
                )
            )
        ]
        part_size = plan.part_size(sum(sizes))
        gate = asyncio.Semaphore(connections)
        # off the CPU, a shard's host buffer is freed once copied: hold at most two at a time
        shards_gate = asyncio.Semaphore(len(files) if target.type == "cpu" else 2)
        out: dict[str, torch.Tensor] = {}

        async def shard(name: str, header: stlayout.Header) -> None:
            where = f"{src.root}/{name}"
            for e in header.entries:
                if weight_map is not None and weight_map.get(e.name, name) != name:
                    raise FormatError(f"{where}: tensor {e.name!r} is indexed under {weight_map[e.name]!r}")
            async with shards_gate:
                got = await fetch_shard(
                    store, name, header, part_size=part_size, gate=gate, where=where,
                    pin=target.type == "cuda", policy=plan.retry,
                )  # fmt: skip
                for key, t in got.items():
                    if key in out:
                        raise FormatError(f"{where}: tensor {key!r} also appears in another shard")
                    out[key] = to_target(t, device=target, dtype=dtype)

        await asyncio.gather(*(shard(f, h) for f, h in zip(files, headers, strict=True)))
    if weight_map is not None:
        missing = sorted(set(weight_map) - set(out))
        if missing:
            raise FormatError(f"{url}: index lists tensors no shard holds: {missing[:5]}")
    return out
