"""Fetch one committed checkpoint: manifest, then the tensor file in parallel verified parts.

Parts are read with concurrent range reads (one per connection, not one batch-get, so
they travel on many TCP streams) straight into one host buffer; each part's xxh64 is
checked as it lands, and the whole file's as the in-order prefix grows. Tensors are
views of that buffer. Anything wrong raises `CheckpointError` naming the checkpoint.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import torch
import xxhash

from farfeed.checkpoint import stlayout
from farfeed.checkpoint.manifest import MANIFEST, Manifest
from farfeed.checkpoint.plan import Transfer
from farfeed.checkpoint.scan import StepListing
from farfeed.checkpoint.tree import unflatten
from farfeed.errors import CheckpointError, FormatError, NotFoundError, StoreError, TransientError
from farfeed.store.base import Store

ATTEMPTS = 3


async def read_manifest(store: Store, listing: StepListing, *, where: str) -> Manifest:
    """The step's manifest, parsed and checked."""
    try:
        raw = await store.read(f"{listing.folder}/{MANIFEST}")
    except NotFoundError:
        raise CheckpointError(f"checkpoint {where} has no manifest (deleted meanwhile?)") from None
    man = Manifest.from_json(raw, where=f"{where}/{MANIFEST}")
    if man.step != listing.step:
        raise CheckpointError(f"checkpoint {where}: manifest says step {man.step}, folder says {listing.step}")
    return man


def check_listing(man: Manifest, listing: StepListing, *, where: str) -> None:
    """Cheap check from the listing alone: the tensor file exists with the size the manifest says."""
    path = f"{listing.folder}/{man.data.path}"
    size = listing.files.get(path)
    if size is None:
        raise CheckpointError(f"checkpoint {where} is missing its tensor file {man.data.path!r}")
    if size != man.data.size:
        what = "truncated" if size < man.data.size else "too long"
        raise CheckpointError(
            f"checkpoint {where}: tensor file {man.data.path!r} is {what} ({size} bytes, manifest says {man.data.size})"
        )


async def fetch_tensor_file(store: Store, man: Manifest, listing: StepListing, *, transfer: Transfer, where: str) -> torch.Tensor:
    """The whole tensor file in one uint8 host tensor, every part and the whole verified."""
    data = man.data
    path = f"{listing.folder}/{data.path}"
    buf = torch.empty(data.size, dtype=torch.uint8)
    view = buf.numpy()
    nparts = len(data.parts)
    done = [False] * nparts
    whole = xxhash.xxh64()
    hashed = 0  # parts 0..hashed-1 are folded into `whole`
    gate = asyncio.Semaphore(transfer.connections)

    async def one(i: int) -> None:
        nonlocal hashed
        off, length = data.part_range(i)
        async with gate:
            blob = await _read(store, path, off, length, where=where)
        if len(blob) != length:
            raise CheckpointError(f"checkpoint {where}: part {i} came back with {len(blob)} of {length} bytes")
        got = xxhash.xxh64(blob).hexdigest()
        if got != data.parts[i]:
            raise CheckpointError(
                f"checkpoint {where}: part {i} (bytes {off}..{off + length} of {data.path}) is corrupt: "
                f"xxh64 {got}, manifest says {data.parts[i]}"
            )
        view[off : off + length] = np.frombuffer(blob, dtype=np.uint8)
        done[i] = True
        while hashed < nparts and done[hashed]:
            o, n = data.part_range(hashed)
            whole.update(view[o : o + n].data)
            hashed += 1

    tasks = [asyncio.ensure_future(one(i)) for i in range(nparts)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
    if whole.hexdigest() != data.xxh64:
        raise CheckpointError(f"checkpoint {where}: whole-file xxh64 {whole.hexdigest()} != manifest {data.xxh64}")
    return buf


async def _read(store: Store, path: str, off: int, length: int, *, where: str) -> bytes:
    for attempt in range(ATTEMPTS):
        try:
            return await store.read(path, off, length)
        except TransientError:
            if attempt == ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.1 * 2**attempt)
        except NotFoundError:
            raise CheckpointError(f"checkpoint {where}: tensor file vanished while loading") from None
        except StoreError as exc:
            raise CheckpointError(f"checkpoint {where}: reading bytes {off}..{off + length} failed: {exc}") from exc
    raise AssertionError("unreachable")


def build_state(buf: torch.Tensor, man: Manifest, *, where: str, map_location: str | torch.device) -> Any:
    """The saved state: tensors (views of ``buf``, moved to ``map_location``) put back in the tree."""
    try:
        header = stlayout.parse_header(bytes(buf[: min(len(buf), stlayout.HEADER_PROBE)].numpy()), where=where)
        if header.data_start > stlayout.HEADER_PROBE:
            header = stlayout.parse_header(bytes(buf[: header.data_start].numpy()), where=where)
    except FormatError as exc:
        raise CheckpointError(f"checkpoint {where}: bad tensor header: {exc}") from None
    if header.file_size != man.data.size or len(header.entries) != man.tensors:
        raise CheckpointError(
            f"checkpoint {where}: tensor header lists {len(header.entries)} tensors / {header.file_size} bytes, "
            f"manifest says {man.tensors} / {man.data.size}"
        )
    device = torch.device(map_location)
    tensors: dict[str, torch.Tensor] = {}
    for e in header.entries:
        t = stlayout.view_tensor(buf, e, header.data_start)
        tensors[e.name] = t if device.type == "cpu" else t.to(device)
    return unflatten(man.state, tensors)
