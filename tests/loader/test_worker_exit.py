"""DataLoader workers close their connections and threads before they exit: at the end of
an epoch, after a step limit and after an exception in the loop, on a loaded box."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from farfeed.loader import DataLoader, Dataset
from farfeed.server import serve_in_thread


@pytest.fixture(scope="module")
def gateway(image_dataset: Path) -> Iterator[str]:
    with serve_in_thread(image_dataset.parent) as url:
        yield f"{url}/{image_dataset.name}"


@pytest.fixture
def loaded_box() -> Iterator[None]:
    """Three busy processes on this 2-core box while the test runs (load average > 2)."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        yield
    finally:
        for p in burners:
            p.kill()
            p.wait()


class Stop(Exception):
    pass


@pytest.mark.parametrize("how", ["epoch", "step-limit", "exception"])
def test_workers_close_every_session_before_they_exit(
    gateway: str, how: str, loaded_box: None, capfd: pytest.CaptureFixture[str]
) -> None:
    ds = Dataset(gateway, batch_size=8, seed=1)
    loader = DataLoader(ds, batch_size=8, num_workers=2)
    got = 0
    try:
        for step, batch in enumerate(loader):
            got += len(batch["__key__"])
            if how == "step-limit" and step == 2:
                break
            if how == "exception" and step == 2:
                raise Stop
    except Stop:
        pass
    import gc

    gc.collect()  # the abandoned iterator shuts its workers down now
    assert got == (120 if how == "epoch" else 24)
    err = capfd.readouterr().err  # the workers' stderr too (they share its descriptor)
    assert "Unclosed" not in err and "Task was destroyed" not in err, err
