"""farfeed installs beside the newest boto3 with ``pip check`` clean (issue 12).

A fresh virtual environment gets the newest ``boto3`` first, as a user's environment has
it, then farfeed from this checkout (without the torch extra), through pip's resolver:
nothing may be downgraded or left broken. Needs the package registry (CI has it).

Kept fast without cutting the resolver out: the test's own pip drives the new
environment (``pip --python``, so the venv needs no pip of its own), farfeed's wheel is
built once with the test's setuptools (no isolated build environment), nothing is
byte-compiled, and pip's cache holds the downloads.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str | Path) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
def test_farfeed_installs_beside_newest_boto3(tmp_path: Path) -> None:
    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input")
    into = ("--python", python)
    _run(*pip, *into, "install", "--no-compile", "--upgrade", "boto3")
    botocore_before = _run(python, "-c", "import botocore; print(botocore.__version__)").strip()

    source = tmp_path / "farfeed"  # the checkout's files, built outside the shared tree
    for rel in _run("git", "-C", ROOT, "ls-files", "-co", "--exclude-standard").split():
        if (ROOT / rel).is_file():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, source / rel)
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", source)
    (wheel,) = (tmp_path / "dist").glob("farfeed-*.whl")
    _run(*pip, *into, "install", "--no-compile", wheel)  # the resolver meets boto3's pins

    _run(*pip, *into, "check")
    found = _run(python, "-c", "import botocore; print(botocore.__version__)").strip()
    assert found == botocore_before, "installing farfeed moved botocore"
    frozen = _run(*pip, *into, "freeze")
    assert "aiobotocore" not in frozen and "torch" not in frozen
    code = "import boto3; from farfeed.store import S3Store; print(S3Store('s3://b/p').url)"
    assert _run(python, "-c", code).strip() == "s3://b/p"
