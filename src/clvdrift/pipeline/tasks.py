"""The task functions the Airflow DAGs call: thin, typed, retry-safe wrappers over the monitoring cycle.

The DAG files (``dags/``) only wire; they import this module inside their tasks, so parsing a DAG
touches no database, file or network. The DAGs are the adapters: they read
:func:`clvdrift.settings.get_settings` and pass it in (library code never reads settings).

Retry safety (Airflow retries a failed task with the same run id):

- :func:`start_monitoring_run` reuses the ``runs`` row of a run id started by an earlier attempt.
- :func:`check_new_data` counts the files the ledger attributes to this run as new, so a retry after
  the files were processed still sees them (the ledger processes each content once).
- :func:`finish_monitoring_run` finishes only a ``running`` row: a retried finishing task does not
  record the run (and its drift event) twice.
- :func:`train_clv_model` first looks for a version registered by the same Airflow run (its data
  fingerprint's source names the run) and returns it instead of registering a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from clvdrift.config import DriftConfig, GateConfig, TrainConfig
from clvdrift.errors import RegistryError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from clvdrift.model.registry import ModelRegistry
    from clvdrift.pipeline.common import Workspace

TRIGGER = "airflow"


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


@dataclass(frozen=True)
class _Context:
    settings: TaskSettings
    workspace: Workspace
    engine: Engine
    registry: ModelRegistry


def _context(settings: TaskSettings) -> _Context:
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.store import connect

    ws = settings.workspace()
    engine = connect(ws.database_url)
    return _Context(settings, ws, engine, ModelRegistry(engine))


def run_marker(airflow_run_id: str) -> str:
    """The run id of the ``runs`` row (and the ledger) for one Airflow DAG run."""
    return f"airflow:{airflow_run_id}"


def start_monitoring_run(settings: TaskSettings, run_id: str) -> bool:
    """Start the ``runs`` row ``run_id`` (trigger ``airflow``); ``False`` when an earlier attempt did."""
    from clvdrift.store.runs import RunStore

    ctx = _context(settings)
    runs = RunStore(ctx.engine)
    try:
        runs.start(run_id, TRIGGER, {"current_dir": str(ctx.workspace.current_dir)})
    except RegistryError:
        runs.get(run_id)  # an unknown id means the start failed for another reason: raises
        return False
    return True


def check_new_data(settings: TaskSettings, run_id: str) -> dict[str, Any]:
    """Start the run, then add the new files of ``current_dir`` to the history (quarantining bad ones).

    Returns ``{"new_files": n, "files": [...]}``; with ``n == 0`` the run is finished as ``skipped``
    (the DAG then skips the rest).
    """
    from clvdrift.data.history import TransactionHistory
    from clvdrift.model.artifacts import ensure_champion_published
    from clvdrift.pipeline.cycle import check_new_data as check
    from clvdrift.store.ledger import Ledger

    start_monitoring_run(settings, run_id)
    ctx = _context(settings)
    ws = ctx.workspace
    ensure_champion_published(ctx.registry, ws.models_dir, ws.reference_dir)
    ledger = Ledger(ctx.engine)
    new = check(
        ws.current_dir,
        ws.quarantine_dir,
        ledger=ledger,
        history=TransactionHistory(ws.history_dir, ctx.engine),
        mode=settings.batch_mode,
        run_id=run_id,
    )
    ours = [
        f
        for f in new.files
        if f.status == "processed"
        or (f.status == "seen before" and (rec := ledger.get(f.sha256)) is not None and rec.run_id == run_id)
    ]
    files = new.to_dict()["files"]
    if not ours:
        champion = ctx.registry.champion()
        finish_monitoring_run(
            settings,
            run_id,
            status="skipped",
            decision="no_new_data",
            champion_version=champion.version if champion else None,
            details={"files": files},
        )
    return {"new_files": len(ours), "files": files}


def detect_drift(settings: TaskSettings, run_id: str) -> dict[str, Any]:
    """Check the transaction history against the champion; the decision as a JSON-able dict.

    Recomputing is harmless (the report files are rewritten), so a retry needs no guard.
    """
    from clvdrift.data.history import TransactionHistory
    from clvdrift.pipeline.detect import detect_transactions

    ctx = _context(settings)
    ws = ctx.workspace
    history = TransactionHistory(ws.history_dir, ctx.engine)
    detected = detect_transactions(
        history.read(),
        registry=ctx.registry,
        models_dir=ws.models_dir,
        reports_dir=ws.reports_dir,
        source=f"transaction history ({len(history.batches())} batches), {run_id}",
        config=settings.drift,
        render_html=False,
    )
    return {
        "data_drift": bool(detected.decision.data_drift_detected),
        "model_drift": bool(detected.decision.model_drift_detected),
        "retraining_required": bool(detected.retraining_required),
        "model_version": detected.model_version,
        "reasons": list(detected.decision.reasons),
        "report": detected.reports["json"],
    }


def finish_monitoring_run(
    settings: TaskSettings, run_id: str, *, status: str, decision: str, **fields: Any
) -> bool:
    """Finish the ``runs`` row ``run_id`` unless an earlier attempt did; ``True`` when this call did."""
    from clvdrift.store.runs import RUNNING, RunStore

    runs = RunStore(_context(settings).engine)
    if runs.get(run_id).status != RUNNING:
        return False
    runs.finish(run_id, status=status, decision=decision, **fields)
    return True


def finish_with_decision(settings: TaskSettings, run_id: str, detected: dict[str, Any]) -> bool:
    """Record the drift decision of ``detect_drift`` as the run's outcome (success)."""
    return finish_monitoring_run(
        settings,
        run_id,
        status="success",
        decision="retrain" if detected["retraining_required"] else "no_retrain",
        champion_version=detected["model_version"],
        data_drift=detected["data_drift"],
        model_drift=detected["model_drift"],
        details={"report": detected["report"], "reasons": detected["reasons"]},
    )


def _version_of_run(ctx: _Context, marker: str) -> Any:
    for version in ctx.registry.list_versions():
        if marker in str((version.data_fingerprint or {}).get("source", "")):
            return version
    return None


def train_clv_model(
    settings: TaskSettings, run_id: str, conf: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Retrain and gate on the transaction history (a plain first training when there is no champion).

    Returns version, gate outcome, reason and metrics; a retry of the same run returns the version the
    earlier attempt registered.
    """
    from clvdrift.data import load_transactions
    from clvdrift.data.history import TransactionHistory
    from clvdrift.pipeline.cycle import retrain
    from clvdrift.pipeline.train import train

    ctx = _context(settings)
    ws = ctx.workspace
    conf = dict(conf or {})
    marker = f"[{run_id}]"
    done = _version_of_run(ctx, marker)
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
        )
        version = ctx.registry.get(first.version)
        return _training_result(first.version, "first training", "no champion yet", version, conf)
    history = TransactionHistory(ws.history_dir, ctx.engine)
    has_history = bool(history.batches())
    raw = history.read() if has_history else load_transactions(ws.raw_data)
    where = "transaction history" if has_history else str(ws.raw_data)
    challenger = retrain(
        raw,
        engine=ctx.engine,
        registry=ctx.registry,
        workspace=ws,
        train_config=settings.train,
        gate_config=settings.gate,
        source=f"{where} {marker}",
    )
    registered = ctx.registry.get(challenger.version)
    return _training_result(challenger.version, challenger.outcome, challenger.reason, registered, conf)


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
