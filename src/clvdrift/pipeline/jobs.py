"""What ``clvdrift worker`` does each round (the seed's drift monitor and retraining worker in one):

1. :func:`check_logged_predictions`: the predictions the service logged for the champion and not yet
   checked (their features and the predictions) against the champion's reference profile, decided with
   the monitoring cycle's drift rules (``DriftConfig``: tests, drift share, key columns); stored as a
   drift event (source ``worker``). Data drift enqueues a retrain job (unless one is pending).
   :func:`check_earlier_predictions` checks those logged by earlier champions against their own profiles
   (drift events, no retrain job).
2. :func:`check_new_history`: when the history holds batches no finished run has checked (ingested
   through the API, or files of a cycle that died), one monitoring cycle (:func:`monitor_cycle`, trigger
   ``worker``): the same lock, decision, retraining and gate as every cycle.
3. :func:`run_next_job`: the oldest queued retrain job (:class:`clvdrift.store.jobs.RetrainJobs`), run
   through the cycle's :func:`clvdrift.pipeline.cycle.retrain` — the training lock, the challenger on the
   time split, the champion/challenger gate — and recorded as a run of kind ``retrain``. A heartbeat
   keeps the job's lease while it runs; a worker killed mid-job leaves it to be taken again.

:func:`request_retrain` enqueues a job (``POST /retrain``, the worker's checks, and the cycle when
``loop.retrain`` is ``queue``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from clvdrift.config import DriftConfig, GateConfig, LoopConfig, TrainConfig
from clvdrift.errors import ArtifactIntegrityError, ClvdriftError, LockBusyError
from clvdrift.faults import fault_point
from clvdrift.io import ProcessIdentity, sha256_file
from clvdrift.jsonable import dataclass_dict
from clvdrift.observability.logging import get_logger, log_context
from clvdrift.pipeline.common import Workspace

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

    from clvdrift.engines import Source
    from clvdrift.pipeline.serving import OnlineDrift
    from clvdrift.store.jobs import RetrainJob

__all__ = [
    "WorkerRound",
    "check_earlier_predictions",
    "check_logged_predictions",
    "check_new_history",
    "request_retrain",
    "run_next_job",
    "worker_round",
]

log = get_logger(__name__)


def request_retrain(engine: Engine, requested_by: str, reason: str, *, unless_pending: bool = False) -> Any:
    """Enqueue a retrain job; with ``unless_pending``, ``None`` when a job is queued or running already."""
    from clvdrift.store.jobs import RetrainJobs

    jobs = RetrainJobs(engine)
    if unless_pending and jobs.pending():
        return None
    return jobs.enqueue(requested_by, reason)


def check_logged_predictions(
    workspace: Workspace, engine: Engine, rules: DriftConfig, *, warning: float, critical: float
) -> OnlineDrift | None:
    """Check the champion's unchecked logged predictions (module docstring); ``None`` when there are none.
    A part that is missing or differs from its checksum is skipped with an error in the log (and stays
    unchecked)."""
    from clvdrift.pipeline.serving import load_serving_champion

    champion = load_serving_champion(workspace, engine)
    drift = _check_version(workspace, engine, champion, rules, warning=warning, critical=critical)
    if drift is not None and drift.dataset_drift:
        request_retrain(
            engine,
            "worker",
            f"data drift in {drift.rows} logged predictions of {champion.version} (event {drift.event_id}): "
            + "; ".join(drift.reasons),
            unless_pending=True,
        )
    return drift


def check_earlier_predictions(
    workspace: Workspace, engine: Engine, rules: DriftConfig, *, warning: float, critical: float
) -> list[OnlineDrift]:
    """The unchecked logged predictions of versions that are no longer the champion (served before a
    promotion or rollback), each version's against its own reference profile: one drift event per version,
    and no retrain job (the model that served them is not the champion any more). A version whose files
    are gone or fail their checksums is skipped with an error in the log; its predictions stay
    unchecked."""
    from clvdrift.pipeline.serving import champion_version, load_serving_champion
    from clvdrift.store.online import PredictionLog

    current = champion_version(engine)
    versions = dict.fromkeys(
        b.model_version for b in PredictionLog(engine).unchecked() if b.model_version != current
    )
    events = []
    for version in versions:
        try:
            served = load_serving_champion(workspace, engine, version=version)
        except ClvdriftError as exc:
            log.error("cannot check the logged predictions of %s: %s", version, exc)
            continue
        drift = _check_version(workspace, engine, served, rules, warning=warning, critical=critical)
        if drift is not None:
            events.append(drift)
    return events


def _check_version(
    workspace: Workspace,
    engine: Engine,
    served: Any,
    rules: DriftConfig,
    *,
    warning: float,
    critical: float,
) -> OnlineDrift | None:
    """The unchecked logged predictions of the version ``served``, against its reference profile, as one
    drift event; ``None`` when there are none or no part could be read. The batches are claimed in one
    transaction with the event (:meth:`PredictionLog.claim`): two workers never check the same batch,
    and a worker killed mid-check leaves them unchecked."""
    from clvdrift.pipeline.serving import drift_event, online_drift
    from clvdrift.store.online import PredictionLog

    with PredictionLog(engine).claim(served.version) as claim:
        frames, used = [], []
        for batch in claim.batches:
            part = workspace.predictions_dir / batch.part_file
            try:
                if sha256_file(part) != batch.part_sha256:
                    raise ArtifactIntegrityError(f"logged predictions {batch.part_file}: checksum differs")
                frames.append(pd.read_parquet(part))
                used.append(batch.batch_id)
            except (OSError, ClvdriftError) as exc:
                log.error("skipping logged predictions %s: %s", batch.part_file, exc)
        if not frames:
            return None
        rows = pd.concat(frames, ignore_index=True)
        drift = online_drift(served, rows, warning=warning, critical=critical, source="worker", rules=rules)
        claim.done(drift_event(drift), used)
    return drift


def check_new_history(
    workspace: Workspace,
    engine: Engine,
    *,
    mode: str,
    train_config: TrainConfig,
    drift_config: DriftConfig,
    gate_config: GateConfig,
    loop_config: LoopConfig,
) -> Any:
    """One monitoring cycle when the history holds unchecked batches; ``None`` otherwise or when another
    cycle is running (it will check them)."""
    from clvdrift.errors import LockBusyError
    from clvdrift.pipeline.cycle import monitor_cycle
    from clvdrift.store.ledger import Ledger

    if not Ledger(engine).unchecked() and not _unrecorded_batches(workspace, engine):
        return None
    try:
        return monitor_cycle(
            workspace,
            mode=mode,  # type: ignore[arg-type]
            trigger="worker",
            train_config=train_config,
            drift_config=drift_config,
            gate_config=gate_config,
            loop_config=loop_config,
        )
    except LockBusyError:
        return None


def _unrecorded_batches(workspace: Workspace, engine: Engine) -> bool:
    """Whether the history holds a batch the ledger does not know (its writer was killed before
    recording it, e.g. an ingestion request): the cycle records and checks it."""
    from clvdrift.data.history import TransactionHistory, current_batches
    from clvdrift.store import Ledger

    known = {r.sha256 for r in Ledger(engine).list()}
    batches = current_batches(TransactionHistory(workspace.history_dir, engine).batches())
    return any(b.sha256 not in known for b in batches)


class _Heartbeat:
    """Renews a job's lease every ``interval`` seconds in a thread until stopped."""

    def __init__(self, engine: Engine, job_id: str, owner: ProcessIdentity, interval: float) -> None:
        from clvdrift.store.jobs import RetrainJobs

        self.jobs, self.job_id, self.owner, self.interval = RetrainJobs(engine), job_id, owner, interval
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {job_id}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.jobs.heartbeat(self.job_id, self.owner):
                    self.lost = True
                    return
            except ClvdriftError as exc:  # the store is down for a moment: the next beat tries again
                log.warning("heartbeat of job %s failed: %s", self.job_id, exc)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def run_next_job(
    workspace: Workspace,
    engine: Engine,
    *,
    train_config: TrainConfig,
    gate_config: GateConfig,
    lease_seconds: float,
    owner: ProcessIdentity | None = None,
) -> RetrainJob | None:
    """Take the oldest queued retrain job and run it (module docstring); the job as finished, or
    ``None`` when the queue is empty."""
    from clvdrift.pipeline.cycle import CycleContext, read_history, retrain
    from clvdrift.store.jobs import RetrainJobs
    from clvdrift.store.runs import RunStore

    owner = owner or ProcessIdentity.current()
    jobs = RetrainJobs(engine)
    job = jobs.claim(owner, lease_seconds=lease_seconds)
    if job is None:
        return None
    run_id = f"{job.job_id}_a{job.attempts}"
    ctx = CycleContext.open(workspace)
    runs = RunStore(engine)
    runs.reap(by=run_id)  # an earlier attempt's run whose worker died: failed, with why
    for attempt in range(1, job.attempts):  # an earlier attempt registered its model before it died
        done = ctx.registry.of_run(f"{job.job_id}_a{attempt}")
        if done is not None:
            result = {"run_id": f"{job.job_id}_a{attempt}", "version": done.version, "recovered": True}
            jobs.finish(job.job_id, owner, ok=True, result=result)
            return jobs.get(job.job_id)
    with (
        log_context(run_id=run_id),
        _Heartbeat(engine, job.job_id, owner, max(0.5, lease_seconds / 4)) as beat,
    ):
        runs.start(run_id, "worker", {"job": job.to_dict()}, kind="retrain", owner=owner)
        fault_point("job.started")
        try:
            history, source = read_history(ctx, run_id)
            raw: pd.DataFrame | Source = history
            if not history.parts:
                from clvdrift.data import load_transactions

                raw, source = load_transactions(workspace.raw_data), str(workspace.raw_data)
            champion = ctx.registry.champion()
            challenger = retrain(
                raw,
                ctx,
                run_id=run_id,
                train_config=train_config,
                gate_config=gate_config,
                source=source,
                lock_wait_seconds=lease_seconds,  # trainings take turns; the heartbeat keeps the job
            )
            fault_point("job.retrained")
            runs.finish(
                run_id,
                status="success",
                decision="retrain",
                champion_version=champion.version if champion else None,
                challenger=challenger.to_dict(),
            )
            result = {"run_id": run_id, **challenger.to_dict()}
            finished = jobs.finish(job.job_id, owner, ok=True, result=result)
        except LockBusyError as exc:  # another training held the lock all along: try again later
            runs.finish(run_id, status="failed", error=str(exc))
            finished = jobs.release(job.job_id, owner, f"attempt {job.attempts}: {exc}")
        except Exception as exc:  # the job failed: recorded with why, not retried
            error = str(exc) if isinstance(exc, ClvdriftError) else f"{type(exc).__name__}: {exc}"
            runs.finish(run_id, status="failed", error=error)
            finished = jobs.finish(job.job_id, owner, ok=False, error=error)
        except BaseException as exc:  # SIGTERM or Ctrl-C: the job goes back to the queue
            why = f"stopped ({type(exc).__name__}) during attempt {job.attempts}"
            runs.finish(run_id, status="failed", error=why)
            jobs.release(job.job_id, owner, why)
            raise
        if not finished or beat.lost:
            log.error("job %s was taken over by another worker while it ran", job.job_id)
    return jobs.get(job.job_id)


@dataclass(frozen=True)
class WorkerRound:
    """What one round of the worker did."""

    drift_event: str | None
    drift_severity: str | None
    data_drift: bool | None
    earlier_events: list[str]
    """Drift events of the logged predictions of earlier champions (:func:`check_earlier_predictions`)."""
    cycle: dict[str, Any] | None
    job: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def worker_round(
    workspace: Workspace,
    engine: Engine,
    *,
    mode: str,
    train_config: TrainConfig,
    drift_config: DriftConfig,
    gate_config: GateConfig,
    loop_config: LoopConfig,
    warning: float,
    critical: float,
    lease_seconds: float,
) -> WorkerRound:
    """One round: logged predictions, new history, one retrain job (module docstring). A step that
    fails is logged and the round goes on (the next round tries again); no champion yet skips step 1."""
    from clvdrift.errors import NoChampionError

    drift = None
    try:
        drift = check_logged_predictions(workspace, engine, drift_config, warning=warning, critical=critical)
    except NoChampionError:
        pass
    except ClvdriftError as exc:
        log.error("checking logged predictions failed: %s", exc)
    earlier: list[OnlineDrift] = []
    try:
        earlier = check_earlier_predictions(
            workspace, engine, drift_config, warning=warning, critical=critical
        )
    except ClvdriftError as exc:
        log.error("checking the logged predictions of earlier champions failed: %s", exc)
    cycle = None
    try:
        result = check_new_history(
            workspace,
            engine,
            mode=mode,
            train_config=train_config,
            drift_config=drift_config,
            gate_config=gate_config,
            loop_config=loop_config,
        )
        if result is not None:
            cycle = {"run_id": result.run_id, "status": result.status, "decision": result.decision}
    except ClvdriftError as exc:
        log.error("the monitoring cycle failed: %s", exc)
    job = None
    try:
        done = run_next_job(
            workspace, engine, train_config=train_config, gate_config=gate_config, lease_seconds=lease_seconds
        )
        job = done.to_dict() if done is not None else None
    except ClvdriftError as exc:
        log.error("the retrain job failed: %s", exc)
    return WorkerRound(
        drift_event=drift.event_id if drift else None,
        drift_severity=drift.severity if drift else None,
        data_drift=drift.dataset_drift if drift else None,
        earlier_events=[d.event_id for d in earlier],
        cycle=cycle,
        job=job,
    )
