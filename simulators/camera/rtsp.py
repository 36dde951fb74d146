"""``RtspSimulator``: runs ``rtsp_server.py`` under the system Python (GStreamer RTSP server) as a child process."""

from __future__ import annotations

import logging
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

SCRIPT = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


class RtspSimulatorError(RuntimeError):
    """The RTSP server could not start (missing Debian packages, bad file)."""


class RtspSimulator:
    """Serves MPEG-TS H.264 files as ``rtsp://127.0.0.1:<port>/<name>``; each client gets its file from the start.

    ``kill()`` and ``restart()`` script video loss; the port stays the same across restarts.
    """

    def __init__(self, mounts: dict[str, Path], port: int = 0, python: str = SYSTEM_PYTHON) -> None:
        self.mounts = dict(mounts)
        self.port = port
        self.python = python
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{name}"

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        if not Path(self.python).exists() and shutil.which(self.python) is None:
            raise RtspSimulatorError(f"{self.python} not found: install python3-gi and gir1.2-gst-rtsp-server-1.0")
        args = [self.python, str(SCRIPT), "--port", str(self.port), "--exit-with-stdin"]
        for name, path in self.mounts.items():
            args += ["--mount", f"{name}={path}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        self._proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        assert self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._proc.stdout], [], [], 0.2)
            if ready:
                line = self._proc.stdout.readline()
                break
            if self._proc.poll() is not None:
                break
        if not line.startswith(b"READY "):
            err = b""
            try:
                self._proc.wait(2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            if self._proc.stderr is not None:
                err = self._proc.stderr.read()
            self.kill()
            raise RtspSimulatorError(f"RTSP server did not start: {line!r} {err.decode(errors='replace')[-800:]}")
        self.port = int(line.split()[1])
        log.info("RTSP simulator on port %d: %s", self.port, ", ".join(self.mounts))

    def kill(self) -> None:
        """Stop the server abruptly (clients see the stream stop)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait(10)
        for fh in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if fh is not None:
                fh.close()
        self._proc = None

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    def __enter__(self) -> RtspSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
