"""The task functions the Airflow DAGs call: thin, typed, retry-safe wrappers over the monitoring cycle.

The DAG files (``dags/``) only wire; they import this module inside their tasks, so parsing a DAG
touches no database, file or network. The DAGs are the adapters: they read
:func:`clvdrift.settings.get_settings` and pass it in (library code never reads settings).

Retry safety (Airflow retries a failed task with the same run id):

- :func:`start_monitoring_run` reuses the ``runs`` row of a run id started by an earlier attempt.
- :func:`check_new_data` takes files in under the store's cycle lock (a CLI cycle and an Airflow run
  never take in at once; a busy lock fails the task, which Airflow retries). Files a run took in stay
  unchecked in the ledger until a run finishes their check, so a retry after they were processed, or
  the next run after a failed one, checks them again.
- :func:`finish_monitoring_run` finishes only a ``running`` row: a retried finishing task does not
  record the run (and its drift event) twice.
- :func:`train_clv_model` first looks for the version registered by the same Airflow run (the
  registry records each version's ``run_id``, unique) and returns it instead of registering a second.
  It records its challenger on the monitoring run that triggered it (once), so the run history
  counts Airflow's promotions and rejections like the CLI's.

Every task routes clvdrift's logs into Airflow's task log (and ``log_file`` when set) and publishes the
store's metrics when it finishes a run or a training.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from clvdrift.config import DriftConfig, GateConfig, LoopConfig, TrainConfig
from clvdrift.observability.logging import get_logger

if TYPE_CHECKING:
    import pandas as pd

    from clvdrift.pipeline.common import Workspace
    from clvdrift.pipeline.cycle import CycleContext

TRIGGER = "airflow"
log = get_logger(__name__)


class TaskSettings(Protocol):
    """What the tasks read of ``clvdrift.settings.Settings`` (passed in by the DAGs)."""

    def workspace(self) -> Workspace: ...
    @property
    def batch_mode(self) -> Literal["snapshot", "append"]: ...
    @property
    def train(self) -> TrainConfig: ...
    @property
    def drift(self) -> DriftConfig: ...
    @property
    def gate(self) -> GateConfig: ...
    @property
    def loop(self) -> LoopConfig: ...
    @property
    def log_level(self) -> str: ...
    @property
    def log_file(self) -> Path | None: ...


def _context(settings: TaskSettings) -> CycleContext:
    from clvdrift.observability.logging import configure
    from clvdrift.pipeline.cycle import CycleContext

    configure(settings.log_level, settings.log_file, host_handles_output=True)
    return CycleContext.open(settings.workspace())


def run_marker(airflow_run_id: str) -> str:
    """The run id of the ``runs`` row (and the ledger) for one Airflow DAG run."""
    return f"airflow:{airflow_run_id}"


def start_monitoring_run(settings: TaskSettings, run_id: str) -> bool:
    """Start the ``runs`` row ``run_id`` (trigger ``airflow``); ``False`` when an earlier attempt did."""
    from clvdrift.pipeline.cycle import start_run

    return start_run(_context(settings), run_id, TRIGGER, settings.batch_mode)


def check_new_data(settings: TaskSettings, run_id: str) -> dict[str, Any]:
    """Start the run, then add the new files of ``current_dir`` to the history (quarantining bad ones).

    Returns ``{"new_files": n, "files": [...]}``; with ``n == 0`` the run is finished as ``skipped``
    (the DAG then skips the rest).
    """
    from clvdrift.pipeline.common import Timings
    from clvdrift.pipeline.cycle import cycle_lock, finish_skipped, start_run, take_new_data
    from clvdrift.store.runs import RUNNING, RunStore

    ctx = _context(settings)
    t = Timings()
    with cycle_lock(ctx, settings.loop.lock_wait_seconds):  # busy: the task fails and Airflow retries it
        if not start_run(ctx, run_id, TRIGGER, settings.batch_mode):
            finished = RunStore(ctx.engine).get(run_id)
            if finished.status != RUNNING:  # a task re-run after its run ended: take nothing in
                log.warning("run %s finished already (%s): nothing taken in", run_id, finished.status)
                return {"new_files": 0, "files": [], "finished": finished.status}
        with t.step("check new data", None):
            new = take_new_data(ctx, run_id, settings.batch_mode, settings.loop)
    if not new.to_check:
        finish_skipped(ctx, run_id, t.seconds)
    return {"new_files": len(new.to_check), "files": new.to_dict()["files"]}


def detect_drift(settings: TaskSettings, run_id: str) -> dict[str, Any]:
    """Check the transaction history against the champion; the :class:`DriftOutcome` as a dict (XCom).

    Recomputing is harmless (the report files are rewritten), so a retry needs no guard.
    """
    from clvdrift.pipeline.cycle import DriftOutcome, detect_history, read_history

    ctx = _context(settings)
    raw, source = read_history(ctx, run_id)
    return DriftOutcome.of(detect_history(ctx, raw, source, settings.drift)).to_dict()


def finish_monitoring_run(
    settings: TaskSettings, run_id: str, *, status: str, decision: str, **fields: Any
) -> bool:
    """Finish the ``runs`` row ``run_id`` unless an earlier attempt did; ``True`` when this call did."""
    from clvdrift.pipeline.cycle import finish_run

    return finish_run(_context(settings), run_id, status=status, decision=decision, **fields)


def finish_with_decision(settings: TaskSettings, run_id: str, detected: dict[str, Any]) -> bool:
    """Record the drift decision of :func:`detect_drift` (its dict) as the run's outcome (success)."""
    from clvdrift.pipeline.cycle import DriftOutcome, finish_decided

    return finish_decided(_context(settings), run_id, DriftOutcome.from_dict(detected))


def train_clv_model(
    settings: TaskSettings, run_id: str, conf: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Retrain and gate on the transaction history (a plain first training when there is no champion).

    Returns version, gate outcome, reason and metrics; a retry of the same run returns the version the
    earlier attempt registered.
    """
    from clvdrift.data import load_transactions
    from clvdrift.data.history import TransactionHistory
    from clvdrift.engines import Source
    from clvdrift.pipeline.cycle import publish_metrics, retrain
    from clvdrift.pipeline.train import train

    ctx = _context(settings)
    ws = ctx.workspace
    conf = dict(conf or {})
    marker = run_marker(run_id)
    done = ctx.registry.of_run(marker)
    if done is not None:
        gate = done.training.get("gate") or {}
        outcome = "promoted" if done.is_champion else "rejected"
        return _training_result(done.version, outcome, gate.get("reason", "first training"), done, conf)
    if ctx.registry.champion() is None:
        first = train(
            ws.raw_data,
            registry=ctx.registry,
            models_dir=ws.models_dir,
            reference_dir=ws.reference_dir,
            config=settings.train,
            run_id=marker,
        )
        version = ctx.registry.get(first.version)
        publish_metrics(ctx)
        return _training_result(first.version, "first training", "no champion yet", version, conf)
    history = TransactionHistory(ws.history_dir, ctx.engine)
    if history.batches():  # its checked part files, read by the workspace's engine (as a cycle does)
        raw: pd.DataFrame | Source = Source.of_parts(history.parts(), name="transaction history")
    else:
        raw = load_transactions(ws.raw_data)
    challenger = retrain(
        raw,
        ctx,
        run_id=marker,
        train_config=settings.train,
        gate_config=settings.gate,
        source=raw.name if isinstance(raw, Source) else str(ws.raw_data),
    )
    registered = ctx.registry.get(challenger.version)
    _record_on_monitoring_run(ctx, conf, challenger.to_dict())
    publish_metrics(ctx)
    return _training_result(challenger.version, challenger.outcome, challenger.reason, registered, conf)


def _record_on_monitoring_run(ctx: CycleContext, conf: dict[str, Any], challenger: dict[str, Any]) -> None:
    """The challenger goes on the ``runs`` row of the monitoring run named in ``conf``, if any."""
    from clvdrift.errors import RegistryError
    from clvdrift.store.runs import RunStore

    airflow_run = conf.get("monitoring_run_id")
    if not airflow_run:
        return
    try:
        RunStore(ctx.engine).record_challenger(run_marker(str(airflow_run)), challenger)
    except RegistryError:  # triggered by hand with a made-up id: nothing to attach it to
        log.warning("monitoring run %s is not in the run history; challenger not attached", airflow_run)


def _training_result(
    version: str, outcome: str, reason: str, record: Any, conf: dict[str, Any]
) -> dict[str, Any]:
    return {
        "version": version,
        "outcome": outcome,
        "reason": reason,
        "metrics": record.metrics,
        "gate": record.training.get("gate"),
        "conf": conf,
    }
