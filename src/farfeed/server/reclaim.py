"""Who owns a staged upload, and reclaiming the ones nobody owns any more.

Everything in flight lives under ``ROOT/.farfeed-uploads``. Ownership is an ``flock``: the
kernel drops it when its process dies, ``kill -9`` included, so a lock that can be taken
means the writer is gone, on any worker or gateway sharing ROOT (NFSv4 honours flock
across hosts; a file system that does not should be served by one gateway).

- ``put-<dest>-<random>.tmp``: the body of one whole-object ``PUT``. Its request holds
  an exclusive lock from the moment the file exists (`create_owned`); the request removes
  the file itself on every way out but a crash. So an unlocked one is dead: it is
  removed at gateway start, by the sweep every `SWEEP_INTERVAL` seconds, and when
  another save to the same destination starts.
- ``u-<dest><random>/`` (a chunked upload): it belongs to a client across many requests
  and survives a gateway restart, so that client can resume it. Each request working on
  it holds a shared lock on its ``meta.json`` (`hold_upload`); between requests nobody
  does, and idle time is the only sign of a dead client. It is reclaimed when no request
  holds it and nothing in it changed for ``ServerLimits.reclaim_idle_seconds`` (default
  60 s) and either a new save targets the same destination (a client that gives up and
  starts again, or a trainer restarted after a kill) or a write found the disk full; and
  in any case after ``stale_upload_seconds`` (default 24 h). A live client that is
  resuming through a link cut shorter than the reclaim idle time keeps its upload.

``<dest>`` is the first 16 hex digits of the destination path's xxh64, so the uploads of
one destination are found by name, without opening every upload's ``meta.json``.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import xxhash

from farfeed.server.responses import ApiError

log = logging.getLogger("farfeed.server")

#: How often a running gateway sweeps its staging folder (seconds).
SWEEP_INTERVAL = 60.0
#: How long a request waits for a reclaim that holds an upload's lock (it takes milliseconds).
LOCK_WAIT = 2.0
META = "meta.json"
_DEAD_INSIDE = (".part-", ".commit-")  # staged files inside an upload folder, owned by one request


def dest_key(path: str) -> str:
    """The 16 hex digits that tag staged entries of the destination ``path`` (root-relative)."""
    return xxhash.xxh64(path.encode("utf-8", "surrogatepass")).hexdigest()


def try_lock(fd: int, kind: int) -> bool:
    """``flock(fd, kind)`` without waiting; False when someone else holds a conflicting lock."""
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def create_owned(path: str) -> int:
    """Create ``path`` (it must not exist) and lock it exclusively: the mark of a live writer.

    Between the create and the lock a sweep may find the file unlocked and remove it; the
    lock then lands on a file with no name, which `FileNotFoundError` reports (the caller
    picks a new name: the race needs a sweep within microseconds of the create).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink == 0:
            raise FileNotFoundError(errno.ENOENT, "staged file was reclaimed as it was created")
    except BaseException:
        os.close(fd)
        raise
    return fd


@asynccontextmanager
async def hold_upload(folder: str, upload_id: str) -> AsyncIterator[None]:
    """Hold a shared lock on an upload for one request, so no reclaim removes it meanwhile;
    404 when the upload is gone (committed, aborted or reclaimed)."""
    try:
        fd = os.open(os.path.join(folder, META), os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        raise ApiError(404, f"no such upload: {upload_id!r}") from None
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while not try_lock(fd, fcntl.LOCK_SH):
            if time.monotonic() > deadline:
                raise ApiError(409, f"upload {upload_id!r} is being removed; start a new upload")
            await asyncio.sleep(0.01)
        if os.fstat(fd).st_nlink == 0:
            raise ApiError(
                404, f"upload {upload_id!r} was removed: it sat idle while its space was needed; start a new upload"
            )
        yield
    finally:
        os.close(fd)


def _idle_since(path: str) -> float:
    """The newest mtime of an entry and, for a folder, of what it holds."""
    newest = os.stat(path, follow_symlinks=False).st_mtime
    if os.path.isdir(path) and not os.path.islink(path):
        for sub in os.scandir(path):
            try:
                newest = max(newest, sub.stat(follow_symlinks=False).st_mtime)
            except FileNotFoundError:
                continue
    return newest


def reclaim_file(path: str) -> bool:
    """Remove a request's staged file if its request is gone (its lock is free); True if removed."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        if not try_lock(fd, fcntl.LOCK_EX):
            return False
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)


def reclaim_upload(folder: str, *, max_idle: float, now: float, dest: str | None = None) -> bool:
    """Remove a chunked upload that no request holds and that has been idle ``max_idle``
    seconds (and, with ``dest``, that targets ``dest``); True if removed. An upload that is
    kept loses only the files a dead request left inside it."""
    meta = os.path.join(folder, META)
    try:
        fd = os.open(meta, os.O_RDWR)
    except FileNotFoundError:  # being created, or a create that died before its meta.json
        if now - _idle_since(folder) < max(max_idle, 60.0):
            return False
        shutil.rmtree(folder, ignore_errors=True)
        return True
    try:
        if not try_lock(fd, fcntl.LOCK_EX):
            return False  # a request is working on it
        if dest is not None and _target(fd) != dest:
            return False
        if now - _idle_since(folder) < max_idle:
            for entry in os.scandir(folder):  # no request holds it: these files are dead
                if entry.name.startswith(_DEAD_INSIDE):
                    _unlink_quietly(entry.path)
            return False
        os.unlink(meta)  # first: a request that opened it before now sees a removed upload
        shutil.rmtree(folder, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def _target(fd: int) -> str | None:
    try:
        return str(json.loads(os.pread(fd, 1 << 16, 0))["path"])
    except (ValueError, KeyError, TypeError, OSError):
        return None


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def sweep(staging: str, *, max_age: float, now: float | None = None) -> list[str]:
    """Reclaim every dead entry of the staging folder: unlocked ``put-`` files, uploads idle
    ``max_age`` seconds, and unknown entries untouched that long. Returns their names."""
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        entries = list(os.scandir(staging))
    except FileNotFoundError:
        return removed
    for entry in entries:
        try:
            if entry.name.startswith("put-") and entry.is_file(follow_symlinks=False):
                gone = reclaim_file(entry.path)
            elif entry.name.startswith("u-") and entry.is_dir(follow_symlinks=False):
                gone = reclaim_upload(entry.path, max_idle=max_age, now=now)
            elif now - _idle_since(entry.path) >= max_age:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                gone = True
            else:
                gone = False
            if gone:
                removed.append(entry.name)
        except FileNotFoundError:
            continue  # another worker got there first
        except OSError as exc:
            log.warning("could not sweep staging entry %s: %s", entry.name, exc)
    return removed


def reclaim_for(staging: str, dest: str, *, max_idle: float, now: float | None = None) -> list[str]:
    """Before a save to ``dest``: remove the dead ``PUT`` files of that destination and its
    unfinished uploads idle ``max_idle`` seconds. Returns their names."""
    now = time.time() if now is None else now
    key = dest_key(dest)
    removed: list[str] = []
    try:
        entries = list(os.scandir(staging))
    except FileNotFoundError:
        return removed
    for entry in entries:
        try:
            if entry.name.startswith(f"put-{key}-"):
                gone = reclaim_file(entry.path)
            elif entry.name.startswith(f"u-{key}"):
                gone = reclaim_upload(entry.path, max_idle=max_idle, now=now, dest=dest)
            else:
                continue
        except OSError as exc:
            log.warning("could not reclaim staging entry %s: %s", entry.name, exc)
            continue
        if gone:
            removed.append(entry.name)
    if removed:
        log.info("reclaimed %d abandoned staged upload(s) of %s", len(removed), dest)
    return removed
