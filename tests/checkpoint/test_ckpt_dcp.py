"""torch.distributed.checkpoint through farfeed stores: one process, and two gloo ranks with
a sharded DTensor (each rank writes and reads its own shard over the gateway)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from helpers.stores import Remote
from helpers.torch_state import assert_same, tiny_state

from farfeed.checkpoint.dcp import FarfeedReader, FarfeedWriter


def test_dcp_round_trip_single_process(gateway: Remote) -> None:
    url = f"{gateway.url}/dcp-000100"
    saved = {"model": tiny_state(4)["model"], "extra": {"step": 100}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "assuming ... a single process"
        dcp.save(saved, storage_writer=FarfeedWriter(url))
        target = {"model": {k: torch.zeros_like(v) for k, v in saved["model"].items()}, "extra": {"step": 0}}
        dcp.load(target, storage_reader=FarfeedReader(url))
    assert_same(saved, target)
    assert sorted(p.name for p in (gateway.folder / "dcp-000100").iterdir()) == ["__0_0.distcp", "dot-metadata"]


RANK = textwrap.dedent(
    """
    import os, sys, torch, torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor
    from farfeed.checkpoint.dcp import FarfeedReader, FarfeedWriter
    url, port = sys.argv[1], sys.argv[2]
    rank = int(os.environ["RANK"])
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    mesh = init_device_mesh("cpu", (2,))
    full = torch.arange(64, dtype=torch.float32).reshape(16, 4)
    w = distribute_tensor(full, mesh, [Shard(0)])
    dcp.save({"w": w, "step": 7}, storage_writer=FarfeedWriter(url))
    back = {"w": distribute_tensor(torch.zeros(16, 4), mesh, [Shard(0)]), "step": 0}
    dcp.load(back, storage_reader=FarfeedReader(url))
    assert torch.equal(back["w"].to_local(), full.chunk(2)[rank]), "shard differs"
    assert back["step"] == 7
    dist.destroy_process_group()
    print("rank", rank, "ok", flush=True)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow  # two fresh torch processes: ~10-20 s on the 2-core box
def test_dcp_two_gloo_ranks_sharded_dtensor(gateway: Remote, tmp_path: Path) -> None:
    script = tmp_path / "rank.py"
    script.write_text(RANK)
    url, port = f"{gateway.url}/dcp-sharded", str(_free_port())
    procs = [
        subprocess.Popen(
            # -X faulthandler: a rank that aborts (SIGABRT) prints where each thread was
            [sys.executable, "-X", "faulthandler", str(script), url, port],
            env={**os.environ, "RANK": str(r), "WORLD_SIZE": "2"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in range(2)
    ]
    outs = [p.communicate(timeout=240)[0].decode() for p in procs]
    for r, (p, out) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 0 and f"rank {r} ok" in out, out[-3000:]
    files = sorted(p.name for p in (gateway.folder / "dcp-sharded").iterdir())
    assert files == ["__0_0.distcp", "__1_0.distcp", "dot-metadata"]
