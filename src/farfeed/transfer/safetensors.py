"""A safetensors file's header, read through a store in one (rarely two) range reads.

The header says where every tensor lies, so the data section can then be read in
parallel parts (`Scatter`). Checkpoints and weights both start this way.
"""

from __future__ import annotations

from farfeed.errors import FormatError
from farfeed.format import safetensors as layout
from farfeed.store.base import Store
from farfeed.transfer.retry import DEFAULT_RETRY, RetryPolicy, retrying


async def read_safetensors_header(
    store: Store,
    path: str,
    *,
    size: int,
    where: str,
    probe: bytes | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> tuple[bytes, layout.Header]:
    """The file's length prefix + header (raw bytes) and the parsed `Header`.

    ``size`` is the file's size (from a listing); ``probe`` its first bytes if already
    read (saves a round trip). `FormatError` naming ``where`` when the header is bad or
    does not describe a file of ``size`` bytes; transient read errors are retried (``policy``).
    """
    if probe is not None:
        head = bytes(probe)
    else:
        first = min(size, layout.HEADER_PROBE)
        head = await retrying(lambda: store.read(path, 0, first), what=f"reading {where}", policy=policy)
    need = layout.header_length(head, where=where)
    if need > len(head):
        if need > size:
            raise FormatError(f"{where}: header of {need} bytes in a {size}-byte file")
        have = len(head)
        head += await retrying(
            lambda: store.read(path, have, need - have), what=f"reading {where}", policy=policy
        )
    header = layout.parse_header(head, where=where)
    if header.file_size != size:
        raise FormatError(
            f"{where}: header describes {header.file_size} bytes but the file has {size}"
        )
    return head[: header.data_start], header
