"""`farfeed sample-data`, `pack` and `index`: the real commands, their output, errors and help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import webdataset as wds
from typer.testing import CliRunner

from farfeed.cli import app
from farfeed.format import SampleIndex, TokenIndex

runner = CliRunner()


def test_sample_data_and_pack_images(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["sample-data", "images", str(tmp_path / "img"), "--count", "12", "--classes", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "made 13 images" in result.output
    result = runner.invoke(
        app,
        ["pack", "images", str(tmp_path / "img"), str(tmp_path / "ds"), "--shard-size", "500KB"],
    )
    assert result.exit_code == 0, result.output
    assert (
        "packed 13 samples" in result.output
        and "MB/s" in result.output
        and "0 skipped" in result.output
    )
    index = SampleIndex.load(tmp_path / "ds")
    assert len(index) == 13 and len(index.shard_names) >= 3


def test_sample_text_and_pack_text(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sample-data", "text", str(tmp_path / "txt"), "--max-mb", "0.1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["pack", "text", str(tmp_path / "txt"), str(tmp_path / "tok"), "--tokenizer", "byte"]
    )
    assert result.exit_code == 0, result.output
    assert "documents" in result.output
    assert TokenIndex.load(tmp_path / "tok").vocab_size == 257


def test_index_command(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    with wds.TarWriter(str(tmp_path / "w" / "train-00000.tar")) as sink:
        for i in range(4):
            sink.write({"__key__": f"k{i}", "txt": b"x" * i + b"!", "cls": str(i).encode()})
    result = runner.invoke(app, ["index", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    assert "indexed 4 samples" in result.output
    assert SampleIndex.load(tmp_path / "w").label.tolist() == [0, 1, 2, 3]
    assert SampleIndex.load(tmp_path / "w").class_names() == ["0", "1", "2", "3"]
    names = tmp_path / "classes.txt"
    names.write_text("tench\ngoldfish\nshark\nray\n")
    result = runner.invoke(app, ["index", str(tmp_path / "w"), "--overwrite", "--classes", str(names)])
    assert result.exit_code == 0, result.output
    assert SampleIndex.load(tmp_path / "w").class_names() == ["tench", "goldfish", "shark", "ray"]


def test_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "farfeed", "pack", "images", str(tmp_path / "empty"), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("farfeed: error: no images found in")
    result = runner.invoke(app, ["pack", "images", "a", "b", "--on-error", "maybe"])
    assert result.exit_code == 2 and "maybe" in result.output


def test_help_teaches_units_and_defaults() -> None:
    result = runner.invoke(app, ["pack", "images", "--help"])
    assert result.exit_code == 0
    assert "256MiB" in result.output and "fail" in result.output and "skip" in result.output
    assert runner.invoke(app, ["pack", "text", "--help"]).exit_code == 0
    assert runner.invoke(app, ["sample-data", "images", "--help"]).exit_code == 0
