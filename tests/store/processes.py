"""Real processes for store tests: a function in N processes at once (fork, a barrier, results through a
queue), and Python code in a fresh interpreter (what every CLI command is)."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from typing import Any

TIMEOUT = 60.0


def _child(fn: Callable[..., Any], index: int, args: tuple[Any, ...], barrier: Any, queue: Any) -> None:
    try:
        barrier.wait(TIMEOUT)
        queue.put((index, "ok", fn(index, *args)))
    except BaseException:  # report everything to the parent, which fails the test with it
        queue.put((index, "error", traceback.format_exc()))


def run_at_once(fn: Callable[..., Any], n: int, *args: Any) -> list[tuple[str, Any]]:
    """``[(status, value)]`` of ``fn(i, *args)`` for i in 0..n-1, each in its own process, released together.

    ``status`` is ``"ok"`` with the return value, or ``"error"`` with the child's traceback.
    """
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_child, args=(fn, i, args, barrier, queue)) for i in range(n)]
    for proc in procs:
        proc.start()
    results: dict[int, tuple[str, Any]] = {}
    for _ in range(n):
        index, status, value = queue.get(timeout=TIMEOUT)
        results[index] = (status, value)
    for proc in procs:
        proc.join(TIMEOUT)
    return [results[i] for i in range(n)]


def run_python(code: str) -> str:
    """The stdout of ``python -c code`` in a fresh interpreter that sees this process's ``sys.path``;
    a non-zero exit fails the test (``CalledProcessError``)."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    return out.stdout
