"""save / load / latest / list_checkpoints: the checkpoint calls a training loop makes.

    handle = farfeed.checkpoint.save(state, "http://storage:8470/checkpoints/run1", step=100)
    ...                                      # training goes on while it uploads
    info = farfeed.checkpoint.latest("http://storage:8470/checkpoints/run1")
    state = farfeed.checkpoint.load("http://storage:8470/checkpoints/run1")
"""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch

from farfeed.checkpoint import handle as _handle
from farfeed.checkpoint.download import (
    build_state,
    check_listing,
    fetch_tensors,
    open_step,
    read_manifest,
)
from farfeed.checkpoint.manifest import CheckpointInfo, Manifest, step_dir
from farfeed.checkpoint.scan import StepListing, scan_steps
from farfeed.checkpoint.snapshot import take_snapshot
from farfeed.checkpoint.upload import upload
from farfeed.errors import AccessDeniedError, CheckpointError, ConfigError
from farfeed.store import open_store
from farfeed.store.access import access_options
from farfeed.store.base import Store, UploadResult
from farfeed.transfer.plan import Transfer
from farfeed.transfer.retry import RetryPolicy, open_retrying
from farfeed.transfer.sync import run_sync

#: What a gateway token needs to save (said in the error when the token lacks a scope).
SAVE_SCOPES = (
    "saving a checkpoint to a farfeed gateway needs a token with both the read and the write "
    "scope (read: the gateway's /_farfeed/info and the run's listing; write: the upload, "
    "the commit and retention's deletes)"
)


class CheckpointFallbackWarning(UserWarning):
    """The newest checkpoint is unusable; an older one was used instead (the message names both)."""


def save(
    state: Mapping[str, Any],
    url: str,
    *,
    step: int,
    background: bool = True,
    keep: int | None = 3,
    config: Mapping[str, Any] | None = None,
    token: str | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    store_options: Mapping[str, Any] | None = None,
    transfer: Transfer | None = None,
) -> _handle.SaveHandle:
    """Snapshot ``state`` to host memory now, then upload it as checkpoint ``step`` of the
    run at ``url`` (gateway ``http(s)://HOST/checkpoints/RUN``, ``s3://BUCKET/PREFIX``,
    or a local path) in the background, committed atomically.

    ``keep``: committed checkpoints to retain (older ones are deleted after the commit;
    None keeps all). ``config``: the resolved run configuration (JSON-able), saved with
    it. ``background``: return at once after the snapshot (True) and upload in a thread;
    False uploads before returning. `SaveHandle.wait` gives the result or the error.
    ``token``: the gateway's bearer token (else the URL's, else ``$FARFEED_TOKEN``);
    ``ca_file``: a PEM bundle of CAs to trust for https (else ``$SSL_CERT_FILE``);
    ``store_options``: more `farfeed.store.open_store` keyword arguments (``s3_*``,
    ``timeout``, ``{"ssl": False}`` for a self-signed test server...); ``transfer``: the
    link parts and connections are planned for (default 100 Gb/s, 15 ms).
    On a farfeed gateway the token needs both the ``read`` and the ``write`` scope (the
    save reads the gateway's info and the run's listing, then writes).
    """
    _check_url(url)
    step_dir(step)
    if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or keep < 1):
        raise ConfigError(f"keep must be None or an int >= 1, got {keep!r}")
    if config is not None:
        try:
            json.dumps(dict(config), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config must be JSON-serialisable, got {exc}") from None
    plan = transfer or Transfer()
    access = access_options(url, token=token, ca_file=ca_file, store_options=store_options)
    _opener(url, access, plan)  # bad options fail here, before the snapshot
    _handle.wait_previous()
    snap = take_snapshot(state, metadata={"format": "farfeed-checkpoint", "step": str(step)})
    h = _handle.SaveHandle(url=url, step=step, nbytes=snap.size, snapshot_seconds=snap.seconds)
    # S3 re-cuts parts at its part_size (at least 5 MiB there); give it the planned size
    opener = _opener(url, access, plan, part_size=max(plan.part_size(snap.size), 5 * 1024 * 1024))

    def sent(result: UploadResult) -> None:
        h.sent = result

    async def work() -> CheckpointInfo:
        try:
            async with opener() as store:
                return await upload(store, snap, step=step, url=url, transfer=plan, keep=keep, config=config, on_sent=sent)
        except AccessDeniedError as exc:
            if not url.lower().startswith(("http://", "https://")):
                raise
            raise AccessDeniedError(f"{exc}; {SAVE_SCOPES}") from exc

    return _handle.start(h, work, background=background)


def load(
    url: str,
    *,
    step: int | None = None,
    map_location: str | torch.device = "cpu",
    token: str | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    store_options: Mapping[str, Any] | None = None,
    transfer: Transfer | None = None,
) -> dict[str, Any]:
    """The state saved as checkpoint ``step`` of the run at ``url`` (the newest usable one
    when None), every byte verified, tensors on ``map_location``.

    With ``step=None`` an unusable newest checkpoint (truncated, corrupt) is skipped with a
    `CheckpointFallbackWarning` naming it; with an explicit step it raises `CheckpointError`.
    ``token``: the gateway's bearer token (else the URL's, else ``$FARFEED_TOKEN``);
    ``ca_file``: a PEM bundle of CAs to trust for https (else ``$SSL_CERT_FILE``);
    ``store_options``: more `farfeed.store.open_store` keyword arguments (``s3_*``,
    ``timeout``, ``{"ssl": False}`` for a self-signed test server...); ``transfer``: the
    link parts and connections are planned for (default 100 Gb/s, 15 ms). A gateway token needs the ``read`` scope.
    """
    _check_url(url)
    if step is not None:
        step_dir(step)
    device = _device(map_location)
    plan = transfer or Transfer()
    opener = _opener(url, access_options(url, token=token, ca_file=ca_file, store_options=store_options), plan)

    async def work() -> dict[str, Any]:
        async with opener() as store:
            steps = await scan_steps(store, policy=plan.retry)
            if step is not None:
                listing = steps.get(step)
                if listing is None or not listing.committed:
                    raise CheckpointError(f"no committed checkpoint step {step} at {url}")
                state, _ = await _fetch(store, listing, url=url, plan=plan, device=device)
                return state
            errors: list[str] = []
            for listing in _newest_first(steps):
                try:
                    state, _ = await _fetch(store, listing, url=url, plan=plan, device=device)
                except CheckpointError as exc:
                    errors.append(str(exc))
                    _warn_fallback(exc)
                    continue
                return state
            raise CheckpointError(f"no usable checkpoint at {url}" + (": " + "; ".join(errors) if errors else ""))

    return run_sync(work)


def latest(
    url: str,
    *,
    verify: Literal["size", "full"] = "size",
    token: str | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    store_options: Mapping[str, Any] | None = None,
    transfer: Transfer | None = None,
) -> CheckpointInfo | None:
    """The newest committed checkpoint that passes ``verify``, or None if there is none.

    ``verify="size"`` checks the manifest and the tensor file's size (one listing, one small
    read); ``"full"`` also downloads and checks every part's xxh64. A newest checkpoint that
    fails is skipped with a `CheckpointFallbackWarning` naming it. ``url``: the run, as
    for `save`.
    ``token``: the gateway's bearer token (else the URL's, else ``$FARFEED_TOKEN``);
    ``ca_file``: a PEM bundle of CAs to trust for https (else ``$SSL_CERT_FILE``);
    ``store_options``: more `farfeed.store.open_store` keyword arguments (``s3_*``,
    ``timeout``, ``{"ssl": False}`` for a self-signed test server...); ``transfer``: the
    link parts and connections are planned for (default 100 Gb/s, 15 ms). A gateway token needs the ``read`` scope.
    """
    _check_url(url)
    if verify not in ("size", "full"):
        raise ConfigError(f"verify must be 'size' or 'full', got {verify!r}")
    plan = transfer or Transfer()
    opener = _opener(url, access_options(url, token=token, ca_file=ca_file, store_options=store_options), plan)

    async def work() -> CheckpointInfo | None:
        async with opener() as store:
            for listing in _newest_first(await scan_steps(store, policy=plan.retry)):
                try:
                    where = _where(url, listing)
                    if verify == "full":
                        man, head, header = await open_step(store, listing, where=where, policy=plan.retry)
                        await fetch_tensors(store, man, listing, head, header, transfer=plan, where=where)
                    else:
                        man = await _checked_manifest(store, listing, url=url, policy=plan.retry)
                except CheckpointError as exc:
                    _warn_fallback(exc)
                    continue
                return _info(url, listing, man)
            return None

    return run_sync(work)


def list_checkpoints(
    url: str,
    *,
    token: str | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    store_options: Mapping[str, Any] | None = None,
    transfer: Transfer | None = None,
) -> list[CheckpointInfo]:
    """Every committed checkpoint of the run at ``url`` whose manifest and size check out,
    oldest first (no warnings).

    ``token``: the gateway's bearer token (else the URL's, else ``$FARFEED_TOKEN``);
    ``ca_file``: a PEM bundle of CAs to trust for https (else ``$SSL_CERT_FILE``);
    ``store_options``: more `farfeed.store.open_store` keyword arguments (``s3_*``,
    ``timeout``, ``{"ssl": False}`` for a self-signed test server...); ``transfer``: the
    link parts and connections are planned for (default 100 Gb/s, 15 ms). A gateway token needs the ``read`` scope.
    """
    _check_url(url)
    plan = transfer or Transfer()
    opener = _opener(url, access_options(url, token=token, ca_file=ca_file, store_options=store_options), plan)

    async def work() -> list[CheckpointInfo]:
        async with opener() as store:
            committed = [s for s in (await scan_steps(store, policy=plan.retry)).values() if s.committed]
            committed.sort(key=lambda s: s.step)

            async def one(listing: StepListing) -> CheckpointInfo | None:
                try:
                    man = await _checked_manifest(store, listing, url=url, policy=plan.retry)
                    return _info(url, listing, man)
                except CheckpointError:
                    return None

            found = await asyncio.gather(*(one(s) for s in committed))
            return [i for i in found if i is not None]

    return run_sync(work)


# -- helpers ---------------------------------------------------------------------------


async def _checked_manifest(store: Store, listing: StepListing, *, url: str, policy: RetryPolicy) -> Manifest:
    where = _where(url, listing)
    man = await read_manifest(store, listing, where=where, policy=policy)
    check_listing(man, listing, where=where)
    return man


async def _fetch(
    store: Store, listing: StepListing, *, url: str, plan: Transfer, device: torch.device
) -> tuple[dict[str, Any], Manifest]:
    where = _where(url, listing)
    man, head, header = await open_step(store, listing, where=where, policy=plan.retry)
    tensors = await fetch_tensors(
        store, man, listing, head, header, transfer=plan, where=where, pin=device.type == "cuda"
    )
    state = build_state(tensors, man, map_location=device)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {where}: saved state is not a dict")
    return state, man


def _newest_first(steps: Mapping[int, StepListing]) -> list[StepListing]:
    return sorted((s for s in steps.values() if s.committed), key=lambda s: s.step, reverse=True)


def _info(url: str, listing: StepListing, man: Manifest) -> CheckpointInfo:
    return CheckpointInfo(
        url=_where(url, listing),
        step=man.step,
        bytes=sum(listing.files.values()),
        created=man.created,
        config=man.config,
        tensors=man.tensors,
        xxh64=man.data.xxh64,
    )


def _where(url: str, listing: StepListing) -> str:
    return f"{url.rstrip('/')}/{listing.folder}"


def _warn_fallback(exc: CheckpointError) -> None:
    warnings.warn(f"{exc}; falling back to the previous checkpoint", CheckpointFallbackWarning, stacklevel=4)


def _check_url(url: object) -> None:
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"checkpoint url must be a non-empty string, got {url!r}")


def _device(map_location: str | torch.device) -> torch.device:
    try:
        return torch.device(map_location)
    except (RuntimeError, TypeError):
        raise ConfigError(f"map_location must name a torch device, got {map_location!r}") from None


def _opener(
    url: str, access: Mapping[str, Any], plan: Transfer, *, part_size: int | None = None
) -> Callable[[], Any]:
    """A zero-argument callable opening the store (inside the loop that will use it);
    ``access``: `open_store` keyword arguments from `farfeed.store.access.access_options`."""
    opts = dict(access)
    opts.setdefault("connections", max(plan.connections, 16))
    if part_size is not None:
        opts.setdefault("part_size", part_size)
    open_store(url, **opts)  # validate options and scheme now, before any thread starts
    return lambda: open_retrying(url, policy=plan.retry, **opts)  # a gateway restarting: retried
