"""A process that fits boosters beside this one, for code that fits many models in a row (a replay).

:meth:`clvdrift.model.gbm.GbmModel.fit` fits two boosters and the BTYD model. In one process its
threads share the GIL, and scikit-learn grows trees node by node in Python: on the bundled file's
32,000 stacked rows the two boosters took 0.83 s on two threads against 1.04 s one after the other, and
the BTYD fit beside them stretched a fit to 1.1 s. With the larger booster fitted in another process
the fit took 0.72–0.77 s. Starting that process costs about 1.2 s (a Python with scikit-learn), which
only work of many fits earns back, so it is used only inside :func:`booster_worker`.

The boosters are the same either way: the worker runs the same scikit-learn on the same arrays with one
OpenMP thread and the same seed, and sends the fitted estimator back pickled.

The worker is a child of this process reading tasks from its stdin: when this process ends, however it
ends (SIGKILL included), the pipe closes and the worker exits; on Linux it is also killed by the kernel
when its parent dies (``PR_SET_PDEATHSIG``). When the worker cannot start, dies, fails a task, answers
with bytes that are no message or gives no answer within :data:`PATIENCE_SECONDS`, the fit's future gives
``None`` and the caller fits in its own process: the result is the same, only slower. The protocol is
pickles over a private pipe between a process and its own child.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import IO, Any

__all__ = ["BoosterWorker", "active_worker", "booster_worker"]

_HEADER = struct.Struct("<Q")
PATIENCE_SECONDS = 300.0
"""How long :meth:`BoosterWorker.fitted` waits for one booster (a fit below 100,000 rows takes seconds)."""
CLOSE_SECONDS = 10.0
"""How long closing waits for the worker to finish a fit under way before it is killed."""
_ACTIVE: BoosterWorker | None = None
_USERS = 0  # booster_worker() blocks open
_ACTIVE_LOCK = threading.Lock()


def _send(stream: IO[bytes], obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    """The next object on ``stream``; ``EOFError`` when it closed (between objects or inside one)."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError("the pipe closed")
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the pipe closed inside a message")
    return pickle.loads(data)


def fit_booster(params: dict[str, Any], matrix: Any, target: Any) -> Any:
    """``HistGradientBoostingRegressor(**params).fit(matrix, target)`` on one OpenMP thread: what the
    worker runs for :class:`clvdrift.model.gbm.GbmModel`, whose own fit of the same estimator and
    arrays (one thread below its ``PARALLEL_MIN_ROWS``) gives the same booster."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        return HistGradientBoostingRegressor(**params).fit(matrix, target)


class BoosterWorker:
    """One worker process (module docstring). :meth:`fit` may be called from any thread; the worker
    fits one booster at a time, in the order asked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="booster-worker")
        self._proc: subprocess.Popen[bytes] | None = None
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "clvdrift.model.fit_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # a dying worker's traceback is not the user's: fitted here then
                close_fds=True,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
        except OSError:
            self._proc = None
        self.failures = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _run(self, params: dict[str, Any], matrix: Any, target: Any) -> Any | None:
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None or proc.stdin is None or proc.stdout is None:
                return None
            try:
                _send(proc.stdin, (params, matrix, target))
                status, value = _receive(proc.stdout)
            except Exception:  # any broken answer (a closed pipe, bytes that are no message, a
                # pickle of another version): this worker is done, the caller fits here
                self._stop(kill=True)
                return None
            if status != "ok":  # the fit raised in the worker: the caller fits here and sees the error
                self.failures += 1
                return None
            return value

    def fit(self, params: dict[str, Any], matrix: Any, target: Any) -> Future[Any | None]:
        """A future of the fitted booster, or of ``None`` when the worker could not fit it (closed, dead,
        failed: the caller then fits it with :func:`fit_booster`, which gives the same booster)."""
        try:
            return self._sender.submit(self._run, params, matrix, target)
        except RuntimeError:  # closed meanwhile (another thread's block ended)
            done: Future[Any | None] = Future()
            done.set_result(None)
            return done

    def fitted(self, future: Future[Any | None], patience: float = PATIENCE_SECONDS) -> Any | None:
        """``future``'s booster, or ``None`` when the worker could not fit it or took longer than
        ``patience`` seconds (a stopped or stuck worker: it is killed, and the caller fits here)."""
        try:
            return future.result(timeout=patience)
        except TimeoutError:
            self.kill()
            return None

    def kill(self) -> None:
        """Kill the process now (a fit waiting for it gets ``None``; later fits are done by the caller)."""
        proc = self._proc
        if proc is not None:
            proc.kill()

    def _stop(self, *, kill: bool) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if kill:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with suppress(OSError, ValueError):
                    stream.close()

    def close(self, *, kill: bool = False) -> None:
        """Stop the worker: at once with ``kill``; else once it has read the end of its input (a fit under
        way is finished), killed after :data:`CLOSE_SECONDS`. Never waits longer than that."""
        proc = self._proc
        if proc is not None:
            if kill:
                proc.kill()
            elif proc.stdin is not None:
                with suppress(OSError, ValueError):
                    proc.stdin.close()  # the worker reads the end of its input and exits
            try:
                proc.wait(timeout=CLOSE_SECONDS)
            except subprocess.TimeoutExpired:  # stopped or stuck
                proc.kill()
        self._sender.shutdown(wait=True, cancel_futures=True)  # its read ended with the process
        with self._lock:
            self._stop(kill=True)


def active_worker() -> BoosterWorker | None:
    """The worker of the :func:`booster_worker` blocks open in this process, if any."""
    return _ACTIVE


@contextmanager
def booster_worker() -> Iterator[BoosterWorker]:
    """Within this block :class:`clvdrift.model.gbm.GbmModel` fits its larger booster in a worker
    process (module docstring). Blocks open at once in this process (nested, or on several threads)
    share one worker, stopped when the last of them ends: killed at once when it ends by an exception
    (Ctrl-C, SIGTERM), since nothing will use it."""
    global _ACTIVE, _USERS
    with _ACTIVE_LOCK:
        if _ACTIVE is None:
            _ACTIVE = BoosterWorker()
        worker = _ACTIVE
        _USERS += 1
    failed = True
    try:
        yield worker
        failed = False
    finally:
        with _ACTIVE_LOCK:
            _USERS -= 1
            last = _USERS == 0
            if last:
                _ACTIVE = None
        if last:
            worker.close(kill=failed)


def _forget_worker() -> None:
    """In a forked child: the parent's worker is the parent's (its sender thread is not in the child)."""
    global _ACTIVE, _USERS, _ACTIVE_LOCK
    _ACTIVE, _USERS, _ACTIVE_LOCK = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_worker)


def _serve() -> int:
    """The worker's loop: a task from stdin, its answer to stdout, until stdin closes."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops the worker
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        if os.getppid() == 1:  # the parent died before the line above
            return 0
    tasks = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a library prints must not enter the answers
    import sklearn.ensemble  # noqa: F401  (imported before the first task: the parent starts us early)

    while True:
        try:
            params, matrix, target = _receive(tasks)
        except EOFError:
            return 0
        try:
            answer: tuple[str, Any] = ("ok", fit_booster(params, matrix, target))
        except Exception as exc:
            answer = ("error", f"{type(exc).__name__}: {exc}")
        try:
            _send(answers, answer)
        except OSError:
            return 0


if __name__ == "__main__":
    raise SystemExit(_serve())
