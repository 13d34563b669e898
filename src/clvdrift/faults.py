"""Fault points: named moments of the monitoring cycle where a fault-injection test stops the process.

With ``CLVDRIFT_TEST_STOP_AT=<name>`` in its environment, a process that reaches :func:`fault_point`
``name`` sends itself ``SIGSTOP``; the test then kills it there (``SIGKILL``, or ``SIGTERM`` followed by
``SIGCONT``), so "killed between taking a file in and recording it" is a moment, not a race. Without the
variable a fault point costs one dictionary lookup. The points are listed in :data:`FAULT_POINTS`.
"""

from __future__ import annotations

import os
import signal

ENV = "CLVDRIFT_TEST_STOP_AT"
FAULT_POINTS: tuple[str, ...] = (
    "cycle.started",  # cycle lock held, run row started
    "intake.history_added",  # a file's batch is in the history, its ledger entry not yet recorded
    "intake.quarantine_recorded",  # a bad file is recorded as quarantined, not yet moved
    "cycle.taken_in",  # files taken in, not yet checked
    "cycle.detected",  # drift checked and recorded on the run, retraining not started
    "cycle.retraining",  # challenger trained and gated (training lock held), not yet registered
    "cycle.registered",  # challenger registered (and promoted when it won), training lock still held
    "cycle.finished",  # run finished, metrics published, command not yet returned
)


def fault_point(name: str) -> None:
    """Stop this process here (``SIGSTOP``) when the test environment names this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGSTOP)
