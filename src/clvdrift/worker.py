"""``clvdrift worker``: the drift monitor and retraining worker, one process (adapter).

Every ``service.worker_interval_seconds`` it runs one round of :func:`clvdrift.pipeline.jobs.worker_round`
(logged predictions, new history, one retrain job) and logs what it did; ``--once`` runs one round. Any
number of workers may run against one store: a job is taken by one of them only (``store/jobs.py``).
"""

from __future__ import annotations

import threading

from clvdrift.observability.logging import get_logger
from clvdrift.pipeline.jobs import WorkerRound, worker_round
from clvdrift.settings import Settings

log = get_logger(__name__)


def run_worker(
    settings: Settings, *, once: bool = False, stop: threading.Event | None = None
) -> list[WorkerRound]:
    """Run rounds until ``stop`` is set (or one round with ``once``); the rounds run (``once``) or []."""
    from clvdrift.store import connect

    stop = stop or threading.Event()
    workspace = settings.workspace()
    engine = connect(workspace.database_url)
    service = settings.service
    rounds: list[WorkerRound] = []
    while True:
        done = worker_round(
            workspace,
            engine,
            mode=settings.batch_mode,
            train_config=settings.train,
            drift_config=settings.drift,
            gate_config=settings.gate,
            loop_config=settings.loop,
            warning=service.drift_warning,
            critical=service.drift_critical,
            lease_seconds=service.job_lease_seconds,
        )
        if done.drift_event or done.earlier_events or done.cycle or done.job:
            log.info("worker round: %s", done.to_dict())
        if once:
            rounds.append(done)
            return rounds
        if stop.wait(service.worker_interval_seconds):
            return rounds
