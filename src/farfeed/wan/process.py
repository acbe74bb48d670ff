"""`WanProcess`: the emulator as a child process, so its CPU stays off the caller's GIL.

>>> wan = WanProcess.start(upstream=("127.0.0.1", 8470), link=Link.from_preset("tokyo-fukuoka"))
>>> wan.url_for("http://127.0.0.1:8470/imagenet"); wan.update(rtt=0.03); wan.stats(); wan.stop()

The child is ``python -m farfeed.wan`` (the same `run_wan` as ``farfeed wan``, without
the CLI's imports), driven by JSON lines on its stdin; it exits when stdin closes.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import tempfile
import threading
from types import TracebackType
from typing import IO, Any

from farfeed.errors import ConfigError, FarfeedError
from farfeed.wan.address import format_address, http_url, parse_address, rewrite_url
from farfeed.wan.cuts import Cut, CutControls, CutPlan
from farfeed.wan.link import Link, require_link
from farfeed.wan.serve import BANNER
from farfeed.wan.stats import WanStats


class WanProcess(CutControls):
    """A running ``python -m farfeed.wan`` child; create it with `WanProcess.start`."""

    def __init__(
        self, proc: subprocess.Popen[str], address: tuple[str, int], stderr: IO[str]
    ) -> None:
        self._proc = proc
        self._address = address
        self._stderr = stderr
        self._lock = threading.Lock()

    @classmethod
    def start(
        cls,
        *,
        upstream: tuple[str, int],
        link: Link,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        timeout: float = 30.0,
    ) -> WanProcess:
        """Spawn the child and wait for its banner line; its startup errors raise here."""
        require_link(link)
        command = [
            sys.executable, "-m", "farfeed.wan",
            "--listen", format_address(listen),
            "--upstream", format_address(upstream),
            "--link-json", json.dumps(link.to_dict()),
        ]  # fmt: skip
        stderr = tempfile.TemporaryFile("w+")
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            bufsize=1,
        )
        assert proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()  # type: ignore[union-attr]
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            line = ""
        if not line.startswith(BANNER):
            proc.kill()
            proc.wait()
            stderr.seek(0)
            raise ConfigError(
                f"farfeed wan did not start: {line.strip() or stderr.read().strip()[-500:]!r}"
            )
        address = parse_address(line[len(BANNER) :].split(" ", 1)[0], what="emulator address")
        return cls(proc, address, stderr)

    @property
    def pid(self) -> int:
        """The child's process id (for CPU accounting)."""
        return self._proc.pid

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the emulator listens on."""
        return self._address

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the emulator."""
        return http_url(self._address)

    def url_for(self, base_url: str) -> str:
        """``base_url`` with its host:port replaced by the emulator's."""
        return rewrite_url(base_url, self._address)

    def _call(self, op: str, args: dict[str, Any] | None = None) -> Any:
        with self._lock:
            if (
                self._proc.poll() is not None
                or self._proc.stdin is None
                or self._proc.stdout is None
            ):
                raise FarfeedError(f"farfeed wan (pid {self._proc.pid}) is not running")
            self._proc.stdin.write(json.dumps({"op": op, "args": args or {}}) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise FarfeedError(f"farfeed wan (pid {self._proc.pid}) exited")
        reply = json.loads(line)
        if not reply["ok"]:
            raise ConfigError(reply["error"])
        return reply["result"]

    def update(self, **changes: Any) -> Link:
        """Change link settings now; returns the new link."""
        return Link.from_dict(self._call("update", changes))

    def set_link(self, link: Link) -> None:
        """Replace the link."""
        self._call("set_link", link.to_dict())

    def apply_cut(self, cut: Cut) -> None:
        """Cut the link now; see `CutControls.cut`."""
        self._call("cut", {"mode": cut.mode, "duration": cut.duration})

    def plan_cuts(self, plan: CutPlan) -> None:
        """Cut the link later; see `CutControls.schedule_cut`."""
        args = {"at": plan.at, "mode": plan.cut.mode, "duration": plan.cut.duration}
        self._call("schedule_cut", {**args, "every": plan.every})

    def stats(self) -> WanStats:
        """Counters now; ``cpu_seconds`` is the child's own CPU time."""
        return WanStats.from_dict(self._call("stats"))

    def stop(self, *, timeout: float = 10.0) -> None:
        """Ask the child to stop (close its stdin), kill it if it lingers."""
        proc = self._proc
        if proc.poll() is None:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
                proc.wait(timeout=timeout)
            except (subprocess.TimeoutExpired, OSError):
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> WanProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
