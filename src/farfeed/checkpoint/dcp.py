"""torch.distributed.checkpoint (DCP) storage over a farfeed store: sharded multi-rank checkpoints.

    import torch.distributed.checkpoint as dcp
    from farfeed.checkpoint.dcp import FarfeedReader, FarfeedWriter
    dcp.save(state, storage_writer=FarfeedWriter("http://storage:8470/checkpoints/run1/dcp-100"))
    dcp.load(state, storage_reader=FarfeedReader("http://storage:8470/checkpoints/run1/dcp-100"))

Every rank writes its own file (``__RANK_0.distcp``) and the coordinator the
``.metadata``, exactly as DCP's `FileSystemWriter` does; only the file system under it
is a farfeed store. A file is uploaded in parallel parts when its stream closes (the
gateway checks each part's xxh64 and commits atomically) and downloaded with parallel
range reads when opened; nothing is written to local disk. DCP writes ``.metadata``
last (staged then renamed), so an interrupted save is not loadable. Names DCP starts
with "." are stored with ``dot-`` instead (the gateway serves no hidden names).
"""

from __future__ import annotations

import asyncio
import io
import os
import weakref
from collections.abc import Coroutine, Generator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from torch.distributed.checkpoint.filesystem import (
    FileSystemBase,
    FileSystemReader,
    FileSystemWriter,
)

from farfeed.errors import NotFoundError
from farfeed.store import open_store
from farfeed.store.access import access_options
from farfeed.store.base import Store, split_parts
from farfeed.store.threads import tls_thread
from farfeed.transfer.plan import Transfer
from farfeed.transfer.retry import retrying

T = TypeVar("T")

#: Stored in place of a leading "." in DCP's file names (``.metadata`` -> ``dot-metadata``).
HIDDEN_PREFIX = "dot-"


class _Loop:
    """An event loop in a daemon thread holding the open stores (one per root URL)."""

    def __init__(self, store_options: Mapping[str, Any], transfer: Transfer) -> None:
        self.options = dict(store_options)
        self.options.setdefault("connections", max(transfer.connections, 16))
        self.transfer = transfer
        self.loop = asyncio.new_event_loop()
        self.stores: dict[str, Store] = {}
        self.thread = tls_thread(self.loop.run_forever, name="farfeed-dcp")
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def store(self, root: str) -> Store:
        if root not in self.stores:
            self.stores[root] = await retrying(
                lambda: open_store(root, **self.options), what=f"opening {root}", policy=self.transfer.retry
            )
        return self.stores[root]

    async def _close(self) -> None:
        for store in self.stores.values():
            await store.close()
        self.stores.clear()

    def close(self) -> None:
        if self.loop.is_running():
            self.call(self._close())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)


class _Sink(io.BytesIO):
    """A write stream whose bytes survive ``close()`` (DCP closes it before the upload)."""

    def close(self) -> None:
        pass

    def really_close(self) -> None:
        super().close()


class StoreFileSystem(FileSystemBase):
    """DCP's file-system seam over farfeed stores: paths are ``ROOT_URL/NAME``."""

    def __init__(self, *, store_options: Mapping[str, Any] | None = None, transfer: Transfer | None = None) -> None:
        self._loop = _Loop(store_options or {}, transfer or Transfer())
        self._finalizer = weakref.finalize(self, self._loop.close)

    def close(self) -> None:
        """Close the stores and stop the I/O thread (also done when garbage-collected)."""
        self._finalizer()

    def _split(self, path: Any) -> tuple[str, str]:
        root, _, name = str(path).rstrip("/").rpartition("/")
        # the gateway never serves hidden names; DCP's ".metadata" is stored as "dot-metadata"
        return root, f"{HIDDEN_PREFIX}{name[1:]}" if name.startswith(".") else name

    @contextmanager
    def create_stream(self, path: Any, mode: str) -> Generator[io.IOBase, None, None]:
        root, name = self._split(path)
        if mode == "wb":
            buf = _Sink()
            yield buf
            try:
                self._loop.call(self._upload(root, name, buf.getbuffer()))
            finally:
                buf.really_close()
        elif mode == "rb":
            yield io.BytesIO(self._loop.call(self._download(root, name)))
        else:
            raise ValueError(f"StoreFileSystem streams are 'rb' or 'wb', got {mode!r}")

    async def _upload(self, root: str, name: str, data: memoryview) -> None:
        store = await self._loop.store(root)
        plan = self._loop.transfer
        parts = split_parts(data, plan.part_size(len(data)))
        await retrying(
            lambda: store.write_parts(name, parts, concurrency=plan.connections),
            what=f"writing {root}/{name}", policy=plan.retry,
        )  # fmt: skip

    async def _download(self, root: str, name: str) -> bytearray:
        store = await self._loop.store(root)
        plan = self._loop.transfer
        total = await retrying(lambda: store.size(name), what=f"size of {root}/{name}", policy=plan.retry)
        size = plan.part_size(total)
        gate = asyncio.Semaphore(plan.connections)
        out = bytearray(total)

        async def one(off: int) -> None:
            n = min(size, total - off)
            async with gate:
                out[off : off + n] = await retrying(
                    lambda: store.read(name, off, n), what=f"reading {root}/{name}", policy=plan.retry
                )

        await asyncio.gather(*(one(off) for off in range(0, total, size)))
        return out

    def concat_path(self, path: Any, suffix: str) -> str:
        return f"{str(path).rstrip('/')}/{suffix}"

    def rename(self, path: Any, new_path: Any) -> None:
        root, name = self._split(path)
        new_root, new_name = self._split(new_path)
        self._loop.call(self._rename(root, name, new_root, new_name))

    async def _rename(self, root: str, name: str, new_root: str, new_name: str) -> None:
        src = await self._loop.store(root)
        dst = await self._loop.store(new_root)
        policy = self._loop.transfer.retry
        data = await retrying(lambda: src.read(name), what=f"reading {root}/{name}", policy=policy)
        await retrying(lambda: dst.write(new_name, data), what=f"writing {new_root}/{new_name}", policy=policy)
        await retrying(lambda: src.delete(name), what=f"deleting {root}/{name}", policy=policy)

    def init_path(self, path: Any) -> str:
        return str(path).rstrip("/")

    def mkdir(self, path: Any) -> None:
        """Stores have no folders: nothing to do."""

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: Any) -> bool:
        return isinstance(checkpoint_id, str) and bool(checkpoint_id)

    def exists(self, path: Any) -> bool:
        root, name = self._split(path)
        return self._loop.call(self._exists(root, name))

    async def _exists(self, root: str, name: str) -> bool:
        store = await self._loop.store(root)
        try:
            await retrying(lambda: store.size(name), what=f"size of {root}/{name}", policy=self._loop.transfer.retry)
        except NotFoundError:
            return False
        return True

    def rm_file(self, path: Any) -> None:
        root, name = self._split(path)
        self._loop.call(self._rm(root, name))

    async def _rm(self, root: str, name: str) -> None:
        store = await self._loop.store(root)
        await retrying(lambda: store.delete(name), what=f"deleting {root}/{name}", policy=self._loop.transfer.retry)


class FarfeedWriter(FileSystemWriter):
    """A DCP `StorageWriter` that writes to the farfeed store at ``url`` (a folder per checkpoint).

    ``token``, ``ca_file``, ``store_options``: as for `farfeed.checkpoint.save` (a gateway
    token needs the ``read`` and ``write`` scopes); ``transfer``: the link parts and
    connections are planned for. Other keywords go to `FileSystemWriter`.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        store_options: Mapping[str, Any] | None = None,
        transfer: Transfer | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("sync_files", False)  # no fsync on a network stream; the store commits
        super().__init__(url, **kwargs)
        access = access_options(url, token=token, ca_file=ca_file, store_options=store_options)
        self.fs = StoreFileSystem(store_options=access, transfer=transfer)  # type: ignore[assignment]
        self.path = self.fs.init_path(url)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: Any) -> bool:
        return StoreFileSystem.validate_checkpoint_id(checkpoint_id)


class FarfeedReader(FileSystemReader):
    """A DCP `StorageReader` over the farfeed store at ``url``; each rank's file is read in
    parallel range reads when DCP opens it. ``token``, ``ca_file``, ``store_options``,
    ``transfer``: as for `farfeed.checkpoint.load`."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        store_options: Mapping[str, Any] | None = None,
        transfer: Transfer | None = None,
    ) -> None:
        super().__init__(url)
        access = access_options(url, token=token, ca_file=ca_file, store_options=store_options)
        self.fs = StoreFileSystem(store_options=access, transfer=transfer)  # type: ignore[assignment]
        self.path = self.fs.init_path(url)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: Any) -> bool:
        return StoreFileSystem.validate_checkpoint_id(checkpoint_id)
