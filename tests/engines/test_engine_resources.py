"""The engines' resources and settings.

DuckDB: its spill folder is removed on close, and a SIGKILLed process's folder by the next engine on this
host (a real process, really killed); running out of memory, or of the disk it spills to, is one line with
the setting or the folder to change, never "a bug". Dask: a scheduler setting that is no address is one
line too."""

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
from clvdrift.errors import ConfigError, StorageError
from clvdrift.io import host_tag
from clvdrift.settings import get_settings

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


def _open_and_close(rows: int, memory_limit: str) -> None:
    with open_lines(Source.of_frame(retail_rows(rows)), engine="duckdb", memory_limit=memory_limit):
        pass


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
        other_host = "0" * 6 if host_tag() != "0" * 6 else "1" * 6
        elsewhere = tmp_path / f"clvdrift-duckdb-{killed.pid}-{other_host}-x"
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


def test_a_memory_limit_too_small_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(
        ConfigError, match=r"ran out of memory within its limit \(1MB\): raise CLVDRIFT_DUCKDB"
    ):
        _open_and_close(20_000, "1MB")
    assert _folders(tmp_path) == []
    with pytest.raises(ConfigError, match="DuckDB memory limit 'banana'"):
        _open_and_close(100, "banana")


@pytest.mark.parametrize("value", ["banana", "1e9", "-1GB", "2 GBs"])
def test_the_memory_setting_must_be_an_amount(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLVDRIFT_DUCKDB_MEMORY_LIMIT", value)
    with pytest.raises(ConfigError, match=r"duckdb_memory_limit.*is not an amount of memory"):
        get_settings()


@pytest.mark.parametrize("value", ["2GB", "512 mb", "1.5GiB", "800MB"])
def test_amounts_duckdb_reads_are_accepted(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLVDRIFT_DUCKDB_MEMORY_LIMIT", value)
    assert get_settings().duckdb_memory_limit == value


def test_a_full_disk_under_the_spill_folder_is_a_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 2 MB tmpfs filled but for 16 KB as the temporary directory, and a memory limit that makes DuckDB
    spill: exit 3 with the folder named, and nothing left on the tmpfs but the filler."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    full = tmp_path / "full"
    full.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(full)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {done.stderr.decode().strip()}")
    try:
        st = os.statvfs(full)
        (full / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 16 * 1024))
        monkeypatch.setattr(tempfile, "tempdir", str(full))
        with pytest.raises(
            StorageError, match=rf"disk full while the DuckDB engine spilled to {full}/clvdrift-duckdb-"
        ):
            _open_and_close(300_000, "30MB")
        assert StorageError.exit_code == 3
        assert sorted(p.name for p in full.iterdir()) == ["filler"]
    finally:
        subprocess.run(["umount", str(full)], check=False)


@pytest.mark.parametrize("address", ["notaurl", "tcp://", "http://scheduler:8786"])
def test_a_dask_scheduler_setting_that_is_no_address_is_one_line(address: str) -> None:
    with pytest.raises(ConfigError, match=r"is not a scheduler address, e\.g\. tcp://scheduler:8786"):
        open_lines(Source.of_frame(retail_rows(100)), engine="dask", dask_scheduler=address)


DASK_CHILD = textwrap.dedent(
    """
    import time
    from clvdrift.data.synthetic import retail_rows
    from clvdrift.engines import Source, open_lines
    if __name__ == "__main__":
        with open_lines(Source.of_frame(retail_rows(2000)), engine="dask"):
            print("open", flush=True)
            time.sleep(120)
    """
)


def test_a_killed_process_leaves_no_dask_worker_behind(tmp_path: Path) -> None:
    """The local cluster's two worker processes end with the process that started it, even on SIGKILL."""
    import psutil

    script = tmp_path / "child.py"
    script.write_text(DASK_CHILD)
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "open"
        workers = [
            p
            for p in psutil.Process(child.pid).children(recursive=True)
            if "dask worker" in " ".join(p.cmdline())
        ]
        assert len(workers) == 2
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        _, alive = psutil.wait_procs(workers, timeout=30)
        assert alive == []
    finally:
        child.kill()
        child.wait(timeout=30)
