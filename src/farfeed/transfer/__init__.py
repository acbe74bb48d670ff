"""farfeed.transfer: what the loader, checkpoints and weights share when they move bytes.

- `run_sync`: run a coroutine from plain (synchronous) training code.
- `RetryPolicy` / `Retries` / `retrying`: which errors are retried, for how long (a time
  window, default 120 s), with which backoff, and the log lines while a link is down.
- `Transfer`: how to cut a large object into parts and how many to move at once.
- `read_safetensors_header`: a safetensors file's header in one (rarely two) range reads.
- `Scatter`: copy parts of a tensor file straight into the tensors they cover.
"""

from __future__ import annotations

from farfeed.transfer.plan import Transfer
from farfeed.transfer.retry import Retries, RetryPolicy, retrying
from farfeed.transfer.sync import run_sync

__all__ = ["Retries", "RetryPolicy", "Transfer", "retrying", "run_sync"]
