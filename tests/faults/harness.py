"""The fault-injection harness: a workspace of its own per case, the real `clvdrift` command run as a
subprocess in it, and deterministic kill moments (``CLVDRIFT_TEST_STOP_AT``, see clvdrift.faults).

Every command a case runs is recorded on its :class:`FaultWorkspace`; the shared invariants
(``faults.invariants``) check them all (no traceback, documented exit codes) with the store's state.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clvdrift.faults import ENV as STOP_ENV

WAIT_TIMEOUT = 90.0
"""Seconds a command, or a process on its way to a fault point, may take before the case fails."""
DOCUMENTED_EXITS = {0, 2, 3, 5, 6, 143}
"""docs/operations.md: 0, 2 bad data/settings, 3 store, 5 busy, 6 --fail-on-quarantine; 143 after
SIGTERM. Never 4 (a bug)."""
BASE_ENV = {
    k: v
    for k, v in os.environ.items()
    if not (k.startswith("CLVDRIFT_") and not k.startswith("CLVDRIFT_TEST_")) and k != STOP_ENV
}
BASE_ENV["DO_NOT_TRACK"] = "1"
BASE_ENV.pop("CLVDRIFT_TEST_POSTGRES_URL", None)  # ours is given explicitly as CLVDRIFT_DATABASE_URL
COMMAND = [sys.executable, "-m", "clvdrift"]
BAD_CSV = b"InvoiceNo,StockCode\n1,2\n"
"""A transactions file missing required columns: quarantined."""


@dataclass
class CliResult:
    """One finished `clvdrift` command."""

    args: list[str]
    code: int
    stdout: str
    stderr: str
    expected: tuple[int, ...]
    env_extra: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.env_extra.items())
        return (
            f"`{extra + ' ' if extra else ''}clvdrift {' '.join(self.args)}` exit {self.code}"
            f"\n--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}"
        )

    def json(self) -> Any:
        return json.loads(self.stdout)

    def error_lines(self) -> list[str]:
        """stderr without the JSON log lines: what a user reads."""
        return [line for line in self.stderr.splitlines() if line.strip() and not line.startswith("{")]


@dataclass
class Dropped:
    """A file a case put into the current folder (``name`` as bytes: any name the OS takes)."""

    name: bytes
    sha256: str | None  # None for a folder
    copy: Path | None  # its content, kept aside for the history check
    gone: bool = False  # removed again by the case before any cycle had to handle it


class FaultWorkspace:
    """A working folder with its own store, the user's CLVDRIFT_* settings pointing inside it."""

    def __init__(self, root: Path, database_url: str, *, mode: str = "snapshot") -> None:
        self.root = Path(root)
        self.database_url = database_url
        self.mode = mode
        self.results: list[CliResult] = []
        self.dropped: list[Dropped] = []
        self.extra_env: dict[str, str] = {}
        self.started: list[Running] = []
        self._engine: Any = None
        (self.root / ".kept").mkdir(exist_ok=True)
        (self.root / ".out").mkdir(exist_ok=True)
        self.current_dir.mkdir(parents=True, exist_ok=True)

    # ---- settings -------------------------------------------------------------------------------
    @property
    def current_dir(self) -> Path:
        return self.root / "data" / "current"

    @property
    def history_dir(self) -> Path:
        return Path(self.env.get("CLVDRIFT_HISTORY_DIR", self.root / "data" / "history"))

    @property
    def quarantine_dir(self) -> Path:
        return Path(self.env["CLVDRIFT_QUARANTINE_DIR"])

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def reference_dir(self) -> Path:
        return self.root / "data" / "reference"

    @property
    def metrics_textfile(self) -> Path:
        return self.root / "monitoring" / "metrics" / "clvdrift.prom"

    @property
    def inputs(self) -> Path:
        """Input files made once for the session (``drift.csv``: the data-drift scenario, seed 3)."""
        return self.root / "inputs"

    @property
    def env(self) -> dict[str, str]:
        r = self.root
        env = {
            **BASE_ENV,
            "CLVDRIFT_RAW_DATA": str(r / "history.csv"),
            "CLVDRIFT_DATABASE_URL": self.database_url,
            "CLVDRIFT_MODELS_DIR": str(r / "models"),
            "CLVDRIFT_REFERENCE_DIR": str(r / "data" / "reference"),
            "CLVDRIFT_CURRENT_DIR": str(r / "data" / "current"),
            "CLVDRIFT_REPORTS_DIR": str(r / "monitoring" / "reports"),
            "CLVDRIFT_QUARANTINE_DIR": str(r / "data" / "quarantine"),
            "CLVDRIFT_HISTORY_DIR": str(r / "data" / "history"),
            "CLVDRIFT_METRICS_TEXTFILE": str(self.metrics_textfile),
            # these cases test the loop, not the model: a smaller forest of boosted trees trains ~4x
            # faster (every other setting of the default model is kept)
            "CLVDRIFT_TRAIN__GBM__MAX_ITER": "50",
        }
        env.update(self.extra_env)
        return env

    # ---- store ----------------------------------------------------------------------------------
    @property
    def engine(self) -> Any:
        if self._engine is None:
            from clvdrift.store import connect

            self._engine = connect(self.database_url)
        return self._engine

    def dispose(self) -> None:
        self.kill_leftovers()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # ---- commands -------------------------------------------------------------------------------
    def run(
        self,
        *args: str,
        expect: int | tuple[int, ...] = 0,
        env: dict[str, str] | None = None,
        wrapper: list[str] | None = None,
    ) -> CliResult:
        """Run `clvdrift ARGS` to its end; its exit code must be ``expect``."""
        expected = (expect,) if isinstance(expect, int) else expect
        proc = subprocess.run(
            [*(wrapper or []), *COMMAND, *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            errors="backslashreplace",
            timeout=WAIT_TIMEOUT,
        )
        result = CliResult(list(args), proc.returncode, proc.stdout, proc.stderr, expected, env or {})
        self.results.append(result)
        assert result.code in expected, result.describe()
        assert "Traceback" not in result.stdout + result.stderr, result.describe()
        return result

    def monitor(self, *extra: str, expect: int | tuple[int, ...] = 0, **kw: Any) -> CliResult:
        """`clvdrift monitor --json --mode MODE` (JSON on stdout when it ran a cycle)."""
        return self.run("monitor", "--json", "--mode", self.mode, *extra, expect=expect, **kw)

    def start(self, *args: str, stop_at: str | None = None, env: dict[str, str] | None = None) -> Running:
        """Start `clvdrift ARGS` in the background (stopping itself at ``stop_at`` when given)."""
        n = len(list((self.root / ".out").iterdir()))
        out, err = self.root / ".out" / f"{n}.stdout", self.root / ".out" / f"{n}.stderr"
        extra = {**(env or {}), **({STOP_ENV: stop_at} if stop_at else {})}
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen(
                [*COMMAND, *args], cwd=self.root, env={**self.env, **extra}, stdout=o, stderr=e
            )
        running = Running(self, list(args), proc, out, err, extra)
        self.started.append(running)
        return running

    def kill_leftovers(self) -> None:
        """SIGKILL the processes this workspace started that still run (a case that failed half-way
        must not leave a stopped cycle holding its locks)."""
        for running in self.started:
            if running.proc.poll() is None:
                running.proc.kill()
                running.proc.wait()

    # ---- files ----------------------------------------------------------------------------------
    def drop(self, source: Path | bytes, name: str | bytes, *, age: float = 30.0) -> Dropped:
        """Put a file into the current folder as ``name`` (content: the file ``source`` or bytes),
        dated ``age`` seconds ago (delivered a while ago: no settle pause)."""
        raw_name = os.fsencode(name)
        target = Path(os.fsdecode(self.current_dir)) / os.fsdecode(raw_name)
        if isinstance(source, bytes):
            target.write_bytes(source)
        else:
            shutil.copyfile(source, target)
        if age:
            then = time.time() - age
            os.utime(target, (then, then))
        return self.remember(raw_name)

    def remember(self, name: str | bytes) -> Dropped:
        """Record a file (or folder) of the current folder made by the case itself."""
        from clvdrift.io import sha256_file

        raw_name = os.fsencode(name)
        target = self.current_dir / os.fsdecode(raw_name)
        if target.is_dir():
            dropped = Dropped(raw_name, None, None)
        else:
            digest = sha256_file(target)
            copy = self.root / ".kept" / f"{digest}{_suffix(os.fsdecode(raw_name))}"
            shutil.copyfile(target, copy)
            dropped = Dropped(raw_name, digest, copy)
        self.dropped = [d for d in self.dropped if d.name != raw_name or d.sha256 != dropped.sha256]
        self.dropped.append(dropped)
        return dropped

    def remove(self, name: str | bytes) -> None:
        """Delete a file from the current folder (as an operator cleaning up a processed delivery)."""
        (self.current_dir / os.fsdecode(os.fsencode(name))).unlink()

    # ---- runs -----------------------------------------------------------------------------------
    def runs(self) -> list[Any]:
        from clvdrift.store.runs import RunStore

        return RunStore(self.engine).list(limit=10_000)

    def run_record(self, run_id: str) -> Any:
        from clvdrift.store.runs import RunStore

        return RunStore(self.engine).get(run_id)

    def latest_monitor_run(self) -> Any:
        return next(r for r in self.runs() if r.kind == "monitor")

    def champion(self) -> Any:
        from clvdrift.model.registry import ModelRegistry

        return ModelRegistry(self.engine).champion()

    def versions(self) -> list[Any]:
        from clvdrift.model.registry import ModelRegistry

        return ModelRegistry(self.engine).list_versions()

    def history(self) -> Any:
        from clvdrift.data.history import TransactionHistory

        return TransactionHistory(self.history_dir, self.engine)

    def ledger(self) -> Any:
        from clvdrift.store.ledger import Ledger

        return Ledger(self.engine)


def _suffix(name: str) -> str:
    lower = name.strip().lower()
    for suffix in (".csv.gz", ".txt.gz", ".csv", ".txt", ".xlsx", ".xlsm", ".parquet", ".pq"):
        if lower.endswith(suffix):
            return suffix
    return ".bin"


@dataclass
class Running:
    """A `clvdrift` command started in the background."""

    ws: FaultWorkspace
    args: list[str]
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    env_extra: dict[str, str]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def state(self) -> str | None:
        """The process state letter of /proc/<pid>/stat ('T' when stopped), None when it is gone."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        return stat[stat.rfind(")") + 2 :].split()[0]

    def wait_stopped(self, timeout: float = WAIT_TIMEOUT) -> None:
        """Wait until the process stopped itself at its fault point."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state() == "T":
                return
            if self.proc.poll() is not None:
                result = self._result(self.proc.returncode, ())
                raise AssertionError(f"never reached {self.env_extra}: {result.describe()}")
            time.sleep(0.02)
        self.proc.kill()
        raise AssertionError(f"not stopped at {self.env_extra} within {timeout} s")

    def kill(self, how: str) -> CliResult:
        """``SIGKILL``, or ``SIGTERM`` then ``SIGCONT`` (the process exits through its handler)."""
        if how == "SIGKILL":
            os.kill(self.pid, signal.SIGKILL)
            return self.finish(expect=(-signal.SIGKILL,))
        assert how == "SIGTERM", how
        os.kill(self.pid, signal.SIGTERM)
        os.kill(self.pid, signal.SIGCONT)
        return self.finish(expect=(143,))

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def finish(self, expect: int | tuple[int, ...] = 0, timeout: float = WAIT_TIMEOUT) -> CliResult:
        """Wait for the end; its exit code must be ``expect``."""
        expected = (expect,) if isinstance(expect, int) else expect
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"`clvdrift {' '.join(self.args)}` did not end within {timeout} s") from None
        result = self._result(code, expected)
        self.ws.results.append(result)
        assert code in expected, result.describe()
        assert "Traceback" not in result.stdout + result.stderr, result.describe()
        return result

    def _result(self, code: int, expected: tuple[int, ...]) -> CliResult:
        read = lambda p: p.read_bytes().decode("utf-8", "backslashreplace")  # noqa: E731
        return CliResult(self.args, code, read(self.out), read(self.err), expected, self.env_extra)
