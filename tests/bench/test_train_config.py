"""TrainConfig and the worker plan: validation quotes the bad value; JSON round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from farfeed.bench.train.config import TrainConfig
from farfeed.bench.train.harness import order
from farfeed.bench.train.loop import Placement
from farfeed.bench.train.spec import link_for, sweep_name
from farfeed.bench.train.worker import Plan
from farfeed.errors import ConfigError


def test_defaults_depend_on_workload() -> None:
    assert TrainConfig(workload="resnet").learning_rate == 0.05
    assert TrainConfig(workload="llm").learning_rate == 3e-3
    assert TrainConfig(workload="llm", batch_size=3).per_rank_batch == 3
    assert TrainConfig(steps=10, warmup_steps=4).timed_steps == 6


@pytest.mark.parametrize(
    ("changes", "quoted"),
    [
        ({"workload": "gpt"}, "'gpt'"),
        ({"device": "tpu"}, "'tpu'"),
        ({"steps": 0}, "0"),
        ({"steps": 5, "warmup_steps": 5}, "warmup_steps=5"),
        ({"batch_size": -1}, "-1"),
        ({"lr": 0.0}, "0.0"),
        ({"workload": "resnet", "lora_base": "models/x"}, "'resnet'"),
    ],
)
def test_bad_values_are_refused_and_quoted(changes: dict[str, object], quoted: str) -> None:
    with pytest.raises(ConfigError, match=quoted):
        TrainConfig(**changes)  # type: ignore[arg-type]


def test_plan_round_trips_and_rejects_unknown_keys(tmp_path: Path) -> None:
    plan = Plan(
        config=TrainConfig(workload="llm", steps=7),
        runs=(Placement("local", "/data/x", "/ck/r", root_url="/data"), Placement("remote", "http://h:1/x")),
        out=tmp_path / "out.json",
        resume=True,
    )
    again = Plan.from_dict(plan.to_dict())
    assert again == plan
    data = plan.to_dict()
    data["config"]["stepz"] = 3
    with pytest.raises(ConfigError, match="stepz"):
        Plan.from_dict(data)


def test_placement_resolves_relative_names_under_its_root() -> None:
    remote = Placement("remote", "http://h:1/text", root_url="http://h:1")
    assert remote.resolve("models/base") == "http://h:1/models/base"
    assert remote.resolve("/abs/base") == "/abs/base"
    assert remote.resolve("s3://b/base") == "s3://b/base"


def test_rounds_rotate_the_placement_order() -> None:
    runs = order(["local", "near", "remote"], 3)
    assert [n for r, n in runs if r == 0] == ["local", "near", "remote"]
    assert [n for r, n in runs if r == 1] == ["near", "remote", "local"]
    assert [n for r, n in runs if r == 2] == ["remote", "local", "near"]


def test_link_for_preset_and_rtt_sweep() -> None:
    name, link, sweep = link_for("tokyo-fukuoka", [])
    assert (name, link.rtt, sweep) == ("tokyo-fukuoka", 0.015, ())
    name, link, sweep = link_for("tokyo-fukuoka", [15.0, 50.0, 5.0])
    assert name == "rtt-15ms" and link.rtt == pytest.approx(0.015)
    assert sweep == (0.05, 0.005) and sweep_name(0.05) == "rtt-50ms"
    with pytest.raises(ConfigError, match="-1"):
        link_for("tokyo-fukuoka", [-1.0])
    with pytest.raises(ConfigError, match="'mars'"):
        link_for("mars", [])


def test_a_real_remote_checkpoints_beside_its_dataset() -> None:
    from farfeed.bench.train.harness import real_remote

    p = real_remote("https://storage.example:8470/imagenet/", run="bench-resnet")
    assert p.name == "remote" and p.data_url == "https://storage.example:8470/imagenet"
    assert p.checkpoint_url == "https://storage.example:8470/checkpoints/bench-resnet-remote"
    assert p.resolve("models/base") == "https://storage.example:8470/models/base"
    assert real_remote("https://s:1/x", run=None).checkpoint_url is None
