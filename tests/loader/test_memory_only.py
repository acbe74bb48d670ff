"""Nothing fetched touches local disk: watch every file the loader's processes open for writing."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.data import packed_images
from helpers.procs import files_open_for_writing, process_tree

from farfeed.store.testing import serve_http

CHILD = """
import sys, tempfile, time
from farfeed.loader import DataLoader, Dataset
# Python's tempfile probes its folder once per process by writing (and deleting) a 4-byte
# file; multiprocessing triggers that when torch first passes a tensor's fd between
# processes. Do it now, before the watch starts: the stdlib's probe is not fetched data.
tempfile.gettempdir()
ds = Dataset(sys.argv[1], decode="image", image_size=16, seed=2)
loader = DataLoader(ds, batch_size=4, num_workers=2)
print("START", flush=True)
n = 0
for images, labels in loader:
    n += len(labels)
    time.sleep(0.05)
print("DONE", n, flush=True)
"""


@pytest.fixture(scope="module")
def http_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("memonly")
    packed_images(root / "images", train=64, seed=3)
    with serve_http(root) as url:
        yield url.rstrip("/") + "/images"


@pytest.fixture
def home() -> Iterator[Path]:
    """An empty HOME and TMPDIR with a short path: torch passes tensors between processes
    through a Unix socket under TMPDIR, whose path may be at most 107 bytes (pytest-xdist's
    tmp_path is longer)."""
    with tempfile.TemporaryDirectory(prefix="ff-home-", dir="/tmp") as folder:
        yield Path(folder)


def test_an_epoch_creates_and_writes_no_files(http_url: str, home: Path) -> None:
    env = dict(os.environ, HOME=str(home), TMPDIR=str(home), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, http_url],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,  # a pipe: pytest's capture file would look like a write
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "START"
    before = sorted(home.rglob("*"))  # torch may make its cache folders at import: not ours
    writable: set[str] = set()
    polls = 0
    while proc.poll() is None:
        for pid in process_tree(proc.pid):
            writable |= files_open_for_writing(pid)
        polls += 1
        time.sleep(0.005)
    rest, errors = proc.communicate()
    assert proc.returncode == 0 and "DONE 64" in rest, errors[-2000:]
    assert polls > 5, polls  # the watch ran during the epoch
    assert writable == set()
    assert sorted(home.rglob("*")) == before  # nothing appeared in cwd, HOME or TMPDIR
