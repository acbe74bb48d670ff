"""examples/trainers/lightning_ddp.py as a user runs it: Lightning DDP on 2 CPU ranks (gloo) reading
a farfeed dataset through the gateway, killed mid-epoch, resumed from Lightning's last checkpoint:
every sample trained exactly once per epoch, and the model and optimizer restored as saved."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.recipes import CRASH_EXIT, EXAMPLES, check_crash_and_resume, records, run_job

EPOCHS = 2  # 120 samples / 2 ranks / batch 4: 15 steps per epoch


@pytest.mark.slow  # two jobs of two fresh Lightning processes each (imports dominate)
def test_lightning_ddp_crash_mid_epoch_resumes_exactly_once(
    served_images: tuple[str, Path], tmp_path: Path
) -> None:
    url, dataset = served_images
    job = [str(EXAMPLES / "lightning_ddp.py"), url, "--out", str(tmp_path / "run"),
           "--epochs", str(EPOCHS), "--checkpoint-every", "4"]  # fmt: skip
    log = tmp_path / "job.log"
    status = run_job([*job, "--record", str(tmp_path / "crashed"), "--crash-after-step", "22"], log=log)
    assert status == CRASH_EXIT, log.read_text()[-3000:]
    status = run_job([*job, "--record", str(tmp_path / "resumed"), "--resume"], log=log)
    assert status == 0, log.read_text()[-3000:]
    step = check_crash_and_resume(
        records(tmp_path / "crashed"), records(tmp_path / "resumed"), dataset=dataset, epochs=EPOCHS
    )
    assert step == 20  # the last checkpoint before the crash: 5 steps into epoch 1
