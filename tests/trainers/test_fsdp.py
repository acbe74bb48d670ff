"""examples/trainers/fsdp_torchrun.py as a user runs it: torchrun, 2 CPU ranks (gloo), FSDP2, data
and checkpoints (DCP shards + farfeed's commit marker) through the gateway, killed mid-epoch, run
again: every sample trained exactly once per epoch, each rank's shards restored as saved."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.recipes import EXAMPLES, check_crash_and_resume, records, run_job

import farfeed.checkpoint as ckpt

EPOCHS = 2  # 120 samples / 2 ranks / batch 4: 15 steps per epoch


@pytest.mark.slow  # two torchrun jobs of two fresh torch processes each
def test_fsdp_torchrun_crash_mid_epoch_resumes_exactly_once(
    served_images: tuple[str, Path], tmp_path: Path
) -> None:
    url, dataset = served_images
    run = url.rsplit("/", 1)[0] + f"/checkpoints/{tmp_path.name}"
    job = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(EXAMPLES / "fsdp_torchrun.py"), url, "--checkpoints", run, "--epochs", str(EPOCHS),
           "--checkpoint-every", "4"]  # fmt: skip
    log = tmp_path / "job.log"
    status = run_job([*job, "--record", str(tmp_path / "crashed"), "--crash-after-step", "22"], log=log)
    assert status != 0 and "exitcode  : 75" in log.read_text(), log.read_text()[-3000:]
    info = ckpt.latest(run)
    assert info is not None and info.step == 20  # the last complete checkpoint before the crash
    status = run_job(job + ["--record", str(tmp_path / "resumed")], log=log)  # the same command again
    assert status == 0, log.read_text()[-3000:]
    step = check_crash_and_resume(
        records(tmp_path / "crashed"), records(tmp_path / "resumed"), dataset=dataset, epochs=EPOCHS
    )
    assert step == 20
    assert ckpt.load(run)["step"] == 28  # the resumed job went on checkpointing
