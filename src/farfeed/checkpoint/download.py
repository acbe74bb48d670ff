"""Fetch one committed checkpoint: manifest, then the tensor file in parallel verified parts.

Parts are read with concurrent range reads (one per connection, not one batch-get, so
they travel on many TCP streams) and copied straight into their tensors; each part's
xxh64 is checked as it lands. (The whole file's xxh64 was checked when the upload was
committed; parts that all match the manifest make the same file.) Anything wrong
raises `CheckpointError` naming the checkpoint.
"""

from __future__ import annotations

import asyncio
from typing import Any

import torch
import xxhash

from farfeed.checkpoint.manifest import MANIFEST, TENSORS, Manifest
from farfeed.checkpoint.scan import StepListing
from farfeed.checkpoint.tree import unflatten
from farfeed.errors import CheckpointError, FormatError, NotFoundError, StoreError, TransientError
from farfeed.format import safetensors as stlayout
from farfeed.store.base import Store
from farfeed.transfer.plan import Transfer
from farfeed.transfer.retry import DEFAULT_RETRY, RetryPolicy, retrying
from farfeed.transfer.safetensors import read_safetensors_header
from farfeed.transfer.scatter import Scatter


async def read_manifest(
    store: Store, listing: StepListing, *, where: str, policy: RetryPolicy = DEFAULT_RETRY
) -> Manifest:
    """The step's manifest, parsed and checked."""
    path = f"{listing.folder}/{MANIFEST}"
    try:
        raw = await retrying(lambda: store.read(path), what=f"reading {where}/{MANIFEST}", policy=policy)
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


async def read_header(
    store: Store,
    man: Manifest,
    listing: StepListing,
    *,
    where: str,
    probe: bytes | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> tuple[bytes, stlayout.Header]:
    """The tensor file's header (raw bytes and parsed), checked against the manifest.

    ``probe``: the file's first bytes if already read (saves a round trip).
    """
    path = f"{listing.folder}/{man.data.path}"
    try:
        head, header = await read_safetensors_header(
            store, path, size=man.data.size, where=where, probe=probe, policy=policy
        )
    except FormatError as exc:
        raise CheckpointError(f"checkpoint {where}: bad tensor header: {exc}") from None
    except NotFoundError:
        raise CheckpointError(f"checkpoint {where}: {path} vanished while loading") from None
    except TransientError:
        raise
    except StoreError as exc:
        raise CheckpointError(f"checkpoint {where}: reading the tensor header failed: {exc}") from exc
    if len(header.entries) != man.tensors:
        raise CheckpointError(
            f"checkpoint {where}: tensor header lists {len(header.entries)} tensors / {header.file_size} bytes, "
            f"manifest says {man.tensors} / {man.data.size}"
        )
    return head, header


def _probe_size(size: int) -> int:
    return min(size, stlayout.HEADER_PROBE)


async def open_step(
    store: Store, listing: StepListing, *, where: str, policy: RetryPolicy = DEFAULT_RETRY
) -> tuple[Manifest, bytes, stlayout.Header]:
    """Manifest and tensor header of a listed step, read in one round trip, and checked."""
    size = listing.files.get(f"{listing.folder}/{TENSORS}")
    if size is None:
        man = await read_manifest(store, listing, where=where, policy=policy)
        check_listing(man, listing, where=where)  # raises: the tensor file is missing
    path = f"{listing.folder}/{TENSORS}"
    probe_read = _read(store, path, 0, _probe_size(size or 0), where=where, policy=policy)
    man, probe = await asyncio.gather(read_manifest(store, listing, where=where, policy=policy), probe_read)
    check_listing(man, listing, where=where)
    head, header = await read_header(store, man, listing, where=where, probe=probe, policy=policy)
    return man, head, header


async def fetch_tensors(
    store: Store,
    man: Manifest,
    listing: StepListing,
    head: bytes,
    header: stlayout.Header,
    *,
    transfer: Transfer,
    where: str,
    pin: bool = False,
) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint in host memory, each part's xxh64 checked as it lands.

    All parts go at once over ``transfer.connections`` range reads, each copied straight
    into the tensors it covers; ``head`` / ``header`` come from `open_step`.
    """
    data = man.data
    path = f"{listing.folder}/{data.path}"
    scatter = Scatter(header.entries, base=header.data_start, pin=pin)
    gate = asyncio.Semaphore(transfer.connections)

    async def one(i: int) -> None:
        off, length = data.part_range(i)
        async with gate:
            blob = await _read(store, path, off, length, where=where, policy=transfer.retry)
        if len(blob) != length:
            raise CheckpointError(f"checkpoint {where}: part {i} came back with {len(blob)} of {length} bytes")
        got = xxhash.xxh64(blob).hexdigest()
        if got != data.parts[i]:
            raise CheckpointError(
                f"checkpoint {where}: part {i} (bytes {off}..{off + length} of {data.path}) is corrupt: "
                f"xxh64 {got}, manifest says {data.parts[i]}"
            )
        if off < len(head) and blob[: len(head) - off] != head[off : off + length]:
            raise CheckpointError(f"checkpoint {where}: tensor header changed while loading")
        scatter.put(off, blob)

    tasks = [asyncio.ensure_future(one(i)) for i in range(len(data.parts))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
    return scatter.tensors


async def _read(
    store: Store, path: str, off: int, length: int, *, where: str, policy: RetryPolicy = DEFAULT_RETRY
) -> bytes:
    """One range read, retried on transient errors; other store errors name the checkpoint."""
    try:
        return await retrying(lambda: store.read(path, off, length), what=f"reading {where}/{path}", policy=policy)
    except NotFoundError:
        raise CheckpointError(f"checkpoint {where}: {path} vanished while loading") from None
    except TransientError:
        raise
    except StoreError as exc:
        raise CheckpointError(f"checkpoint {where}: reading bytes {off}..{off + length} failed: {exc}") from exc


def build_state(tensors: dict[str, torch.Tensor], man: Manifest, *, map_location: torch.device) -> Any:
    """The saved state: the tensors (moved to ``map_location``) put back in the saved tree."""
    if map_location.type != "cpu":
        tensors = {k: v.to(map_location, non_blocking=True) for k, v in tensors.items()}
    return unflatten(man.state, tensors)
