"""The real `clvdrift serve` as a subprocess for tests: on a free port of 127.0.0.1, over a workspace given
by CLVDRIFT_* variables, stopped by PID (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from clvdrift.pipeline.common import Workspace


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(ws: Workspace, **extra: str) -> dict[str, str]:
    """This process's environment without CLVDRIFT_* settings, plus the workspace's and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLVDRIFT_")}
    env.update(
        {
            "CLVDRIFT_DATABASE_URL": ws.database_url,
            "CLVDRIFT_RAW_DATA": str(ws.raw_data),
            "CLVDRIFT_MODELS_DIR": str(ws.models_dir),
            "CLVDRIFT_REFERENCE_DIR": str(ws.reference_dir),
            "CLVDRIFT_HISTORY_DIR": str(ws.history_dir),
            "CLVDRIFT_REPORTS_DIR": str(ws.reports_dir),
            "CLVDRIFT_PREDICTIONS_DIR": str(ws.predictions_dir),
            "CLVDRIFT_CURRENT_DIR": str(ws.current_dir),
            "CLVDRIFT_QUARANTINE_DIR": str(ws.quarantine_dir),
            "CLVDRIFT_METRICS_TEXTFILE": str(ws.metrics_textfile),
            "CLVDRIFT_TRAIN__GBM__MAX_ITER": "50",
            "DO_NOT_TRACK": "1",
            **extra,
        }
    )
    return env


class Server:
    """A running `clvdrift serve`: ``base`` URL, ``proc``; :meth:`stop` (SIGTERM), :meth:`kill` (SIGKILL)."""

    def __init__(self, proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
        self.proc, self.base, self.log = proc, base, log

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=15)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def running_server(env: dict[str, str], log: Path, *, ready: bool = True) -> Iterator[Server]:
    """Start `clvdrift serve` with ``env`` (output to ``log``); wait for /ready (``ready``) or /health."""
    port = free_port()
    out = log.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "clvdrift", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 30
        path = "/ready" if ready else "/health"
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(f"{server.base}{path}", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the server did not answer {path} in 30 s"
            time.sleep(0.1)
        yield server
    finally:
        server.stop()
        out.close()
