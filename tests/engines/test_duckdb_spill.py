"""The DuckDB engine's spill folder: removed on close, and a SIGKILLed process's folder removed by the
next engine that opens on this host (a real process, really killed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from clvdrift.data.synthetic import retail_rows
from clvdrift.engines import Source, open_lines
from clvdrift.io import _host_tag

CHILD = textwrap.dedent(
    """
    import sys, time
    from clvdrift.data.synthetic import retail_rows
    from clvdrift.engines import Source, open_lines
    with open_lines(Source.of_frame(retail_rows(2000)), engine="duckdb"):
        print("open", flush=True)
        time.sleep(120)
    """
)


def _folders(root: Path) -> list[Path]:
    return sorted(root.glob("clvdrift-duckdb-*"))


def test_a_killed_engines_folder_is_removed_by_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    killed = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, text=True)
    live = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, text=True)
    try:
        for child in (killed, live):
            assert child.stdout is not None and child.stdout.readline().strip() == "open"
        by_pid = {int(p.name.split("-")[2]): p for p in _folders(tmp_path)}
        assert set(by_pid) == {killed.pid, live.pid}
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        assert by_pid[killed.pid].exists()  # a SIGKILL leaves it behind
        elsewhere = (
            tmp_path / f"clvdrift-duckdb-{killed.pid}-{'0' * 6 if _host_tag() != '0' * 6 else '1' * 6}-x"
        )
        elsewhere.mkdir()  # another host's engine sharing the folder: not ours to judge
        with open_lines(Source.of_frame(retail_rows(500)), engine="duckdb"):
            mine = [p for p in _folders(tmp_path) if p.name.startswith(f"clvdrift-duckdb-{os.getpid()}-")]
            assert len(mine) == 1
        assert not by_pid[killed.pid].exists()
        assert by_pid[live.pid].exists() and elsewhere.exists()
        assert not mine[0].exists()  # closed: removed by itself
    finally:
        for child in (killed, live):
            child.kill()
            child.wait(timeout=30)
