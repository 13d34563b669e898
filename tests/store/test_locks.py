"""The training lock: refused to another process while held, released when its holder is killed."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from clvdrift.errors import LockBusyError, RegistryError
from clvdrift.store import connect, training_lock

TIMEOUT = 20.0


def _hold(url: str, name: str, held: object, release: object) -> None:
    """Child process: take the lock, say so, keep it until told (or killed)."""
    engine = connect(url)
    with training_lock(engine, name=name):
        held.set()  # type: ignore[attr-defined]
        release.wait(TIMEOUT)  # type: ignore[attr-defined]


@contextmanager
def _holder_process(url: str, name: str = "training") -> Iterator[tuple[multiprocessing.Process, object]]:
    """A real other process holding the lock ``name`` of ``url`` for the block."""
    ctx = multiprocessing.get_context("fork")
    held, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(url, name, held, release))
    proc.start()
    try:
        assert held.wait(TIMEOUT), "the holder process never took the lock"
        yield proc, release
    finally:
        if proc.is_alive():  # Event.set() waits for the sleepers to wake: never set it for a dead one
            release.set()
        proc.join(TIMEOUT)
        if proc.is_alive():
            proc.kill()


def test_another_process_is_refused_while_the_lock_is_held_then_gets_it(store_url):
    engine = connect(store_url)
    with _holder_process(store_url) as (proc, release):
        started = time.monotonic()
        with pytest.raises(LockBusyError) as info, training_lock(engine, wait_seconds=0.3):
            pytest.fail("the lock was granted while another process holds it")
        assert time.monotonic() - started >= 0.3  # it kept trying for wait_seconds
        message = str(info.value)
        assert message.startswith("another training holds the lock since 20"), message
        assert f"pid {proc.pid} on host {socket.gethostname()}" in message
        assert "\n" not in message
        with training_lock(engine, name="other_lock"):  # locks of other names are independent
            pass
        release.set()
        proc.join(TIMEOUT)
        assert proc.exitcode == 0
    # released by the holder at the end of its block, and refused to a second holder in this process too
    with training_lock(engine), pytest.raises(LockBusyError), training_lock(engine):
        pass


def test_a_holder_killed_with_sigkill_releases_the_lock(store_url):
    engine = connect(store_url)
    with _holder_process(store_url) as (proc, _release):
        with pytest.raises(LockBusyError), training_lock(engine):
            pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(TIMEOUT)
        assert proc.exitcode == -signal.SIGKILL
        with training_lock(engine, wait_seconds=5.0):  # the server / kernel frees it when the holder dies
            pass


def test_waiting_gets_the_lock_when_the_holder_finishes_in_time(store_url):
    engine = connect(store_url)
    with _holder_process(store_url) as (_proc, release):
        threading.Timer(0.3, release.set).start()  # type: ignore[attr-defined]
        with training_lock(engine, wait_seconds=10.0):
            pass


def test_an_in_memory_store_has_a_process_local_lock():
    engine = connect("sqlite:///:memory:")
    refused: list[str] = []

    def second() -> None:
        try:
            with training_lock(engine):
                refused.append("granted")
        except LockBusyError as exc:
            refused.append(str(exc))

    with training_lock(engine):
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(TIMEOUT)
    assert len(refused) == 1 and f"pid {os.getpid()} on host" in refused[0], refused
    with training_lock(engine):
        pass


@pytest.mark.parametrize("name", ["", "../escape", "a b", "x" * 65])
def test_a_lock_name_unfit_for_a_file_name_is_refused(tmp_path, name):
    engine = connect(f"sqlite:///{tmp_path / 'store.db'}")
    with (
        pytest.raises(RegistryError, match=r"lock name .* must be 1-64 letters"),
        training_lock(engine, name=name),
    ):
        pass
    store_files = {"store.db", "store.db.lock", "store.db-wal", "store.db-shm"}  # no lock file was made
    assert {p.name for p in tmp_path.iterdir()} <= store_files
