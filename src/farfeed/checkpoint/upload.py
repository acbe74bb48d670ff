"""Send a snapshot to the store and commit it; then apply retention.

Order of events, which is what makes a checkpoint atomic:
1. un-commit a previous checkpoint of the same step (its manifest goes first);
2. upload the tensor file in parallel parts (`Store.write_parts`: gateway chunked
   upload, S3 multipart, local temp file + rename), each part hashed;
3. check the stored size and xxh64 against what was hashed locally;
4. write the manifest (one small atomic write): from here the checkpoint exists;
5. delete checkpoints beyond the newest ``keep``, manifest first.
A failure or a kill before step 4 leaves the previous checkpoint the latest.

Every call is retried on transient errors for ``transfer.retry_for`` seconds (a cut link,
a gateway restart): the upload then resumes, sending only the parts the gateway does not
hold yet; if the gateway lost the upload altogether (its staging was reclaimed), a new
upload starts and every part is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from farfeed.checkpoint.manifest import (
    MANIFEST,
    TENSORS,
    CheckpointInfo,
    DataFile,
    Manifest,
    step_dir,
)
from farfeed.checkpoint.scan import scan_steps
from farfeed.checkpoint.snapshot import Snapshot
from farfeed.errors import CheckpointError, NotFoundError, StoreError, TransientError
from farfeed.store.base import Store, UploadResult
from farfeed.transfer.plan import Transfer
from farfeed.transfer.retry import DEFAULT_RETRY, Retries, RetryPolicy, retrying

log = logging.getLogger("farfeed.checkpoint")

#: Times one save starts its upload again when the gateway lost it (each sends every part).
MAX_RESTARTS = 3


async def upload(
    store: Store,
    snap: Snapshot,
    *,
    step: int,
    url: str,
    transfer: Transfer,
    keep: int | None,
    config: Mapping[str, Any] | None,
    on_sent: Callable[[UploadResult], None] | None = None,
) -> CheckpointInfo:
    """Upload ``snap`` as checkpoint ``step`` of the run at ``url`` and commit it."""
    folder = step_dir(step)
    data_path, manifest_path = f"{folder}/{TENSORS}", f"{folder}/{MANIFEST}"
    policy = transfer.retry
    # re-saving a step: it stops being a checkpoint first (in the same round trip as the start)
    start = getattr(store, "start_upload", None)
    uncommit = retrying(lambda: store.delete(manifest_path), what=f"deleting {url}/{manifest_path}", policy=policy)
    upload_id: str | None = None
    part_size = transfer.part_size(snap.size)
    if callable(start):
        # declaring the part size lets the gateway write parts in place: commit is a rename
        starting = retrying(lambda: start(data_path, part_size=part_size), what=f"starting the upload of {url}/{data_path}", policy=policy)
        _, upload_id = await asyncio.gather(uncommit, starting)
    else:
        await uncommit
    result = await send_parts(
        store, data_path, snap, part_size=part_size, concurrency=transfer.connections, upload_id=upload_id,
        policy=policy,
    )  # fmt: skip
    if on_sent is not None:
        on_sent(result)
    if result.size != snap.size or result.xxh64 != snap.xxh64:
        raise CheckpointError(
            f"checkpoint step {step} at {url}: the store holds {result.size} bytes with xxh64 "
            f"{result.xxh64}, but {snap.size} bytes with xxh64 {snap.xxh64} were sent; not committed"
        )
    manifest = Manifest(
        step=step,
        created=snap.created,
        data=DataFile(TENSORS, snap.size, part_size, tuple(snap.part_hashes), snap.xxh64),
        tensors=len(snap.tensors),
        state=snap.tree,
        config=dict(config) if config is not None else None,
    )
    raw = manifest.to_json()
    await retrying(lambda: store.write(manifest_path, raw), what=f"writing {url}/{manifest_path}", policy=policy)
    log.info("checkpoint step %d committed at %s (%d bytes)", step, url, snap.size)
    if keep is not None:
        await apply_retention(store, keep=keep, newest=step, policy=policy)
    return CheckpointInfo(
        url=f"{url.rstrip('/')}/{folder}",
        step=step,
        bytes=snap.size + len(raw),
        created=snap.created,
        config=manifest.config,
        tensors=manifest.tensors,
        xxh64=snap.xxh64,
    )


async def send_parts(
    store: Store,
    path: str,
    snap: Snapshot,
    *,
    part_size: int,
    concurrency: int,
    upload_id: str | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> UploadResult:
    """`Store.write_parts`, retried on transient errors for ``policy.retry_for`` seconds.

    With a gateway ``upload_id`` each retry resumes that upload, sending only the parts the
    gateway does not hold yet; when the gateway no longer knows the upload (a restart
    reclaimed its staging), a new one is started and everything is sent again.
    """
    writer: Any = store.write_parts
    start: Any = getattr(store, "start_upload", None)
    retries = Retries(policy, what=f"upload of {store.url}/{path}")
    restarts = 0
    try:
        while True:
            extra = {} if upload_id is None else {"upload_id": upload_id}
            try:
                result: UploadResult = await writer(path, snap.parts(part_size), concurrency=concurrency, **extra)
            except TransientError as exc:
                await asyncio.sleep(retries.wait_after(exc, url=store.url))
                continue
            except NotFoundError:
                if upload_id is None or not callable(start) or restarts >= MAX_RESTARTS:
                    raise
                restarts += 1
                log.warning("upload of %s/%s: the gateway lost upload %s; starting it again", store.url, path, upload_id)
                upload_id = None  # gone: nothing to abort
                upload_id = await retrying(
                    lambda: start(path, part_size=part_size), what=f"restarting the upload of {store.url}/{path}",
                    policy=policy,
                )  # fmt: skip
                continue
            retries.succeeded()
            upload_id = None  # committed: nothing to abort
            return result
    finally:
        abort = getattr(store, "abort_upload", None)
        if upload_id is not None and callable(abort):
            with contextlib.suppress(StoreError):
                await asyncio.shield(abort(upload_id))


async def apply_retention(
    store: Store, *, keep: int, newest: int, policy: RetryPolicy = DEFAULT_RETRY
) -> list[int]:
    """Delete committed checkpoints beyond the newest ``keep``, and leftovers of unfinished
    uploads older than step ``newest``. Returns the steps deleted."""
    steps = await scan_steps(store, policy=policy)
    committed = sorted((s for s in steps.values() if s.committed), key=lambda s: s.step, reverse=True)
    doomed = [s for s in committed[keep:]]
    doomed += [s for s in steps.values() if not s.committed and s.step < newest]
    for s in doomed:
        for path in sorted(s.files, key=lambda p: not p.endswith(MANIFEST)):  # manifest first
            await retrying(functools.partial(store.delete, path), what=f"deleting {path}", policy=policy)
    if doomed:
        log.info("retention: deleted steps %s", sorted(s.step for s in doomed))
    return sorted(s.step for s in doomed)
