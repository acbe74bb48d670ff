"""The gateway in a child process that can be stopped, SIGKILLed and restarted on its port.

Used by benchmarks, the demo and fault tests:

    with GatewayProcess.start("/data/farfeed") as gw:
        print(gw.url)       # http://127.0.0.1:41234
        gw.kill()           # as if the storage host lost power
        gw.restart()        # same port, so clients reconnect to the same URL
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from farfeed.errors import ConfigError, TransientError

_LINE = re.compile(r"farfeed gateway listening on (https?)://(\S+):(\d+) \(")


class GatewayProcess:
    """``python -m farfeed.server ROOT ...`` as a child process (its own process group)."""

    def __init__(
        self, args: list[str], *, host: str, timeout: float, max_open_files: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._args = args
        self._env = None if env is None else {**os.environ, **env}
        self._host = host
        self._timeout = timeout
        self._max_open_files = max_open_files
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] = tempfile.TemporaryFile()
        self.url = ""
        self.port = 0

    @classmethod
    def start(
        cls,
        root: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens_file: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        workers: int = 1,
        timeout: float = 30.0,
        options: Sequence[str] = (),
        max_open_files: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> GatewayProcess:
        """Start a gateway, wait until it listens and answers /healthz; ConfigError when it cannot.

        ``options``: more ``farfeed serve`` flags (``["--header-timeout", "2"]``);
        ``max_open_files``: run it under this open-file limit, soft and hard, as after
        ``ulimit -n N`` (to see what it does when descriptors are scarce); ``env``: more
        environment variables for it (an ``s3://`` ROOT's ``AWS_*`` keys).
        """
        args = [str(root), "--host", host, "--port", str(port), "--workers", str(workers), *options]
        for flag, value in (("--tokens", tokens_file), ("--cert", cert), ("--key", key)):
            if value is not None:
                args += [flag, str(value)]
        gw = cls(args, host=host, timeout=timeout, max_open_files=max_open_files, env=env)
        gw._spawn(port)
        return gw

    def _spawn(self, port: int) -> None:
        args = list(self._args)
        args[args.index("--port") + 1] = str(port)
        command = [sys.executable, "-m", "farfeed.server", *args]
        if self._max_open_files is not None:  # set the limit in a trampoline, then exec the gateway
            limit = int(self._max_open_files)
            command = [
                sys.executable, "-c", _LIMIT_THEN_EXEC.format(limit=limit), *command,
            ]  # fmt: skip
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log, start_new_session=True,
            env=self._env,
        )
        # a forgotten gateway dies with this interpreter, not later
        self._finalizer = weakref.finalize(self, _kill_group, self._proc.pid)
        deadline = time.monotonic() + self._timeout
        line = self._read_line(deadline)
        match = _LINE.match(line)
        if match is None:
            self._terminate(signal.SIGKILL)
            raise ConfigError(f"gateway did not start: {line.strip() or 'no output'}; log: {self.log_text()[-2000:]}")
        scheme, host, port_text = match.groups()
        self.port = int(port_text)
        self.url = f"{scheme}://{host}:{self.port}"
        self._wait_healthy(deadline)

    def _read_line(self, deadline: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if sel.select(timeout=0.1):
                    return self._proc.stdout.readline().decode(errors="replace")
                if self._proc.poll() is not None:
                    return ""
        return ""

    def _wait_healthy(self, deadline: float) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only asks whether it is up; clients verify
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2, context=context) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline or (self._proc is not None and self._proc.poll() is not None):
                self._terminate(signal.SIGKILL)
                raise TransientError(f"gateway at {self.url} did not answer /healthz; log: {self.log_text()[-2000:]}")
            time.sleep(0.05)

    def log_text(self) -> str:
        """What the gateway wrote to stderr so far (logs, errors)."""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode(errors="replace")
        self._log.seek(0, os.SEEK_END)
        return text

    @property
    def pid(self) -> int | None:
        """The process id of the gateway (its supervisor with several workers)."""
        return None if self._proc is None else self._proc.pid

    def _terminate(self, signum: int) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._finalizer.detach()
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signum)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def stop(self) -> None:
        """SIGTERM (open requests get a moment to finish), then wait."""
        self._terminate(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the gateway and its workers, as a crash would."""
        self._terminate(signal.SIGKILL)

    def restart(self) -> None:
        """Stop it if it runs, then start it again on the same port."""
        self._terminate(signal.SIGTERM)
        self._spawn(self.port)

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self._log.close()


_LIMIT_THEN_EXEC = (
    "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit})); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
