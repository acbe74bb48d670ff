"""examples/trainers/hf_trainer.py as a user runs it: the Hugging Face Trainer under torchrun, 2 CPU
ranks (gloo), farfeed's DataLoader handed over unwrapped, killed mid-epoch, run again: every sample
trained exactly once per epoch, the model and optimizer restored as saved."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.recipes import EXAMPLES, check_crash_and_resume, records, run_job

EPOCHS = 2  # 120 samples / 2 ranks / batch 4: 15 steps per epoch


@pytest.mark.slow  # two torchrun jobs of two fresh transformers processes each
def test_hf_trainer_crash_mid_epoch_resumes_exactly_once(
    served_images: tuple[str, Path], tmp_path: Path
) -> None:
    url, dataset = served_images
    out = tmp_path / "out"
    job = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(EXAMPLES / "hf_trainer.py"), url, "--out", str(out), "--epochs", str(EPOCHS),
           "--checkpoint-every", "4"]  # fmt: skip
    log = tmp_path / "job.log"
    status = run_job([*job, "--record", str(tmp_path / "crashed"), "--crash-after-step", "22"], log=log)
    assert status != 0 and "exitcode  : 75" in log.read_text(), log.read_text()[-3000:]
    assert max(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*")) == 20
    status = run_job(job + ["--record", str(tmp_path / "resumed")], log=log)  # the same command again
    assert status == 0, log.read_text()[-3000:]
    step = check_crash_and_resume(
        records(tmp_path / "crashed"), records(tmp_path / "resumed"), dataset=dataset, epochs=EPOCHS
    )
    assert step == 20
