"""The booster worker process (clvdrift.model.fit_worker): fits equal to fits in this process, bit for bit;
a worker that dies, fails a task or never starts leaves the fit to this process with the same result;
no worker outlives the block that started it nor a parent killed with SIGKILL."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from tests.model.test_families import _data

from clvdrift.config import GbmParams
from clvdrift.model import fit_worker
from clvdrift.model.fit_worker import BoosterWorker, active_worker, booster_worker
from clvdrift.model.gbm import GbmModel


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # our own child, already exited: reap it
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return False


def _leaves(obj: object, path: str = "") -> dict[str, bytes]:
    """Every value inside ``obj`` (attributes, items), pickled alone, by its path. Two fits give the same
    estimator when these agree: how the two processes share sub-objects differs, never a value."""
    if isinstance(obj, dict):
        return {k: v for key, item in obj.items() for k, v in _leaves(item, f"{path}[{key!r}]").items()}
    if isinstance(obj, list | tuple):
        return {k: v for i, item in enumerate(obj) for k, v in _leaves(item, f"{path}[{i}]").items()}
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return {k: v for name, item in vars(obj).items() for k, v in _leaves(item, f"{path}.{name}").items()}
    return {path: pickle.dumps(obj)}


def _same(a: GbmModel, b: GbmModel) -> bool:
    leaves = [_leaves(m.boosters_) for m in (a, b)]
    return len(leaves[0]) > 100 and leaves[0] == leaves[1]


def _fit(n: int = 2_500, seed: int = 3) -> GbmModel:
    features, target = _data(n, seed)
    return GbmModel(GbmParams(max_iter=30), min_country_customers=5).fit(features, target)


def test_boosters_fitted_in_the_worker_equal_boosters_fitted_here():
    here = _fit()
    with booster_worker() as worker:
        assert active_worker() is worker
        there = _fit()
        assert worker.alive and worker.failures == 0
        pid = worker.pid
    assert active_worker() is None
    assert pid is not None and _gone(pid)  # stopped on the way out
    assert _same(there, here)
    features, _ = _data(2_500, 3)
    assert np.array_equal(there.predict(features), here.predict(features))


def test_nested_blocks_share_one_worker():
    with booster_worker() as outer, booster_worker() as inner:
        assert inner is outer and active_worker() is outer
    assert active_worker() is None


def test_a_worker_killed_between_fits_leaves_the_fit_here_with_the_same_result():
    here = _fit(seed=8)
    with booster_worker() as worker:
        _fit(seed=9)  # the worker is up
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        assert _gone(worker.pid)
        there = _fit(seed=8)
        assert not worker.alive
    assert _same(there, here)


def test_a_task_the_worker_cannot_fit_is_fitted_here(monkeypatch):
    """A fit that raises in the worker (here: an estimator setting the worker's scikit-learn rejects) is
    reported, not lost: the caller fits it itself and sees the library's own error."""
    with booster_worker() as worker:
        bad = worker.fit({"loss": "no-such-loss"}, np.zeros((20, 2)), np.ones(20))
        assert bad.result(timeout=60) is None
        assert worker.failures == 1 and worker.alive
        good = worker.fit({"max_iter": 5}, np.arange(40.0).reshape(20, 2), np.arange(20.0))
        assert good.result(timeout=60) is not None


def test_a_worker_that_cannot_start_leaves_every_fit_here(monkeypatch):
    here = _fit(seed=4)
    monkeypatch.setattr(fit_worker.sys, "executable", "/nonexistent/python")
    with booster_worker() as worker:
        assert not worker.alive
        there = _fit(seed=4)
    assert _same(there, here)


def test_the_worker_exits_when_its_parent_is_killed(tmp_path):
    """SIGKILL gives the parent no chance to stop its worker: the worker must notice by itself."""
    script = textwrap.dedent(
        """
        import sys, time
        import numpy as np
        from clvdrift.model.fit_worker import booster_worker
        with booster_worker() as worker:
            worker.fit({"max_iter": 5}, np.arange(40.0).reshape(20, 2), np.arange(20.0)).result()
            print(worker.pid, flush=True)
            time.sleep(120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        worker_pid = int(line)
        os.kill(worker_pid, 0)  # alive while its parent is
        parent.kill()
        parent.wait(timeout=10)
        assert _gone(worker_pid), "the worker outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_closing_twice_and_fitting_after_close_are_harmless():
    worker = BoosterWorker()
    worker.close()
    worker.close()
    late = worker.fit({"max_iter": 5}, np.zeros((4, 1)), np.ones(4))  # e.g. another thread's block ended
    assert worker.fitted(late, patience=5) is None


def test_a_stopped_worker_is_given_up_on_after_its_patience_and_the_fit_is_done_here():
    """A worker that never answers (SIGSTOP here; a stuck one alike) must not hang the fit."""
    here = _fit(seed=6)
    with booster_worker() as worker:
        _fit(seed=7)  # the worker is up
        assert worker.pid is not None
        pid = worker.pid
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        waiting = worker.fit({"max_iter": 5}, np.arange(40.0).reshape(20, 2), np.arange(20.0))
        assert worker.fitted(waiting, patience=1.0) is None
        assert time.monotonic() - started < 30
        assert _gone(pid)  # killed, not left stopped
        there = _fit(seed=6)
    assert _same(there, here)


def test_a_block_ended_by_an_exception_kills_a_stopped_worker_at_once():
    """Ctrl-C (or SIGTERM's exception) while the worker is stuck: leaving the block does not wait for it."""
    with pytest.raises(KeyboardInterrupt), booster_worker() as worker:
        worker.fitted(worker.fit({"max_iter": 5}, np.zeros((20, 2)), np.arange(20.0)))
        pid = worker.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        worker.fit({"max_iter": 5}, np.zeros((20, 2)), np.arange(20.0))  # waits on the stopped worker
        started = time.monotonic()
        raise KeyboardInterrupt
    assert time.monotonic() - started < 5
    assert _gone(pid)


def test_a_worker_whose_answers_are_not_messages_is_given_up_and_the_fit_done_here(tmp_path, monkeypatch):
    """An interpreter wrapper that prints before Python starts puts bytes on the worker's stdout that
    are no message (read as a length of about 2e18 bytes): the fit is done here, at once."""
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!/bin/sh\necho 'welcome to this machine'\nexec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    here = _fit(seed=12)
    monkeypatch.setattr(fit_worker.sys, "executable", str(wrapper))
    started = time.monotonic()
    with booster_worker() as worker:
        there = _fit(seed=12)
        assert not worker.alive
    assert time.monotonic() - started < 30
    assert _same(there, here)


def test_blocks_on_two_threads_share_one_worker_until_the_last_ends():
    import threading

    first_in, first_out = threading.Event(), threading.Event()
    seen: list[BoosterWorker] = []

    def outer() -> None:
        with booster_worker() as worker:
            seen.append(worker)
            first_in.set()
            first_out.wait(60)

    thread = threading.Thread(target=outer)
    thread.start()
    assert first_in.wait(60)
    with booster_worker() as mine:
        assert mine is seen[0]
        first_out.set()
        thread.join(60)  # the other block ended: the worker stays for this one
        assert mine.alive
        assert (
            mine.fitted(mine.fit({"max_iter": 5}, np.arange(40.0).reshape(20, 2), np.arange(20.0)))
            is not None
        )
    assert active_worker() is None and not mine.alive


def test_a_forked_child_does_not_use_its_parents_worker():
    """The child has no sender thread of the parent's worker: it must fit itself, at once."""
    with booster_worker() as worker:
        worker.fitted(worker.fit({"max_iter": 5}, np.zeros((20, 2)), np.arange(20.0)))
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                started = time.monotonic()
                ok = (
                    active_worker() is None
                    and _fit(n=800, seed=2).boosters_
                    and time.monotonic() - started < 30
                )
                code = 0 if ok else 1
            finally:
                os.write(write, bytes([code]))
                os._exit(code)
        os.close(write)
        answer = os.read(read, 1)
        os.waitpid(pid, 0)
        assert answer == bytes([0])
        assert worker.alive  # the parent's worker is untouched
