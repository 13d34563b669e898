"""One monitoring cycle — what ``clvdrift monitor``, cron and the Airflow DAG run:

check_new_data → detect → decide → (retrain → gate → promote), recorded as one row of the run history.

1. :func:`check_new_data`: every file in ``current_dir`` whose sha256 the ledger has not seen is
   validated (loaded); a good file goes into the transaction history (``snapshot``: it is the whole
   history; ``append``: its new rows are added) and the ledger records it; a bad file moves to
   ``quarantine_dir`` and the ledger records why. No new file → the cycle ends, ``skipped``.
2. detect: the history (as of its newest day) against the champion (:func:`detect_transactions`).
3. decide: retrain when data drift or model drift is detected.
4. retrain → gate → promote, under the store's training lock: a challenger on the time split, gated
   against the champion on the newest matured window (:func:`retrain_and_gate`); the refitted model is
   registered as champion and its files published when it wins, the challenger is registered with the
   gate's reason when it loses.

The steps (:func:`start_run`, :func:`take_new_data`, :func:`finish_skipped`, :func:`read_history`,
:func:`detect_history`, :func:`retrain`, :func:`finish_decided`, :func:`finish_run`) work on a
:class:`CycleContext` and pass typed results; :func:`monitor_cycle` and the Airflow tasks
(``pipeline/tasks.py``) both call them, so each piece of the run's bookkeeping exists once.

Every cycle is one row of the run history (started, then finished as ``success``, ``skipped`` or
``failed`` with the error): the source of truth for counters such as "drift detected, total". When a
run finishes, :func:`publish_metrics` exports the store's numbers (Pushgateway or textfile, see
:mod:`clvdrift.observability.metrics`) and records where they went in the run's ``details``.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from clvdrift.config import DriftConfig, GateConfig, TrainConfig
from clvdrift.data import clean_transactions, load_transactions
from clvdrift.errors import ClvdriftError, DataError, RegistryError
from clvdrift.io import sha256_file
from clvdrift.jsonable import dataclass_dict
from clvdrift.observability.logging import get_logger, log_context
from clvdrift.observability.metrics import PERFORMANCE_METRICS, CheckSummary, PublishOutcome
from clvdrift.pipeline.common import Progress, Timings, Workspace, load_champion, new_version
from clvdrift.pipeline.detect import DetectResult, detect_transactions, training_customers
from clvdrift.pipeline.train import register_version

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

    from clvdrift.data.history import TransactionHistory
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.pipeline.common import Cleaned
    from clvdrift.store.ledger import Ledger

log = get_logger(__name__)
BatchMode = Literal["snapshot", "append"]
TRANSACTION_SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz", ".xlsx", ".xlsm", ".parquet", ".pq")


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file of ``current_dir``."""

    path: str
    sha256: str
    status: str  # "processed" | "quarantined" | "seen before" | "recheck" (after a failed run)
    reason: str | None = None
    rows_added: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


@dataclass(frozen=True)
class NewData:
    """The files a cycle looked at."""

    files: list[FileOutcome]

    @property
    def processed(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "processed"]

    @property
    def quarantined(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "quarantined"]

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


@dataclass(frozen=True)
class ChallengerOutcome:
    """The retrained model and the gate's verdict on it."""

    version: str
    outcome: str  # "promoted" | "rejected"
    reason: str
    gate: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


@dataclass(frozen=True)
class CycleResult:
    """One monitoring cycle, as recorded in the run history."""

    run_id: str
    trigger: str
    status: str  # "success" | "skipped"
    decision: str  # "no_new_data" | "no_retrain" | "retrain"
    new_data: NewData
    detect: DetectResult | None
    challenger: ChallengerOutcome | None
    champion_version: str | None
    timings: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def _is_transactions_file(path: Path) -> bool:
    return (
        path.is_file() and not path.name.startswith(".") and path.name.lower().endswith(TRANSACTION_SUFFIXES)
    )


def check_new_data(
    current_dir: Path,
    quarantine_dir: Path,
    *,
    ledger: Ledger,
    history: TransactionHistory,
    mode: BatchMode,
    run_id: str,
    date_format: str | None = None,
    columns: dict[str, str] | None = None,
) -> NewData:
    """Add every file of ``current_dir`` the ledger has not seen to the history; quarantine bad ones.

    A file is known by its content (sha256), so a re-run never processes a file twice and a file
    rewritten with new content is new. A file that fails validation moves to ``quarantine_dir`` with
    the reason in the ledger; the other files still go through.
    """
    outcomes = []
    for path in sorted(p for p in Path(current_dir).glob("*") if _is_transactions_file(p)):
        digest = sha256_file(path)
        if ledger.get(digest) is not None:
            outcomes.append(FileOutcome(str(path), digest, "seen before"))
            continue
        try:
            frame = load_transactions(path, date_format=date_format, columns=columns)
        except DataError as exc:
            target = Path(quarantine_dir) / f"{digest[:12]}-{path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), target)
            ledger.record(digest, str(path), "quarantined", reason=str(exc), run_id=run_id)
            outcomes.append(FileOutcome(str(path), digest, "quarantined", reason=str(exc)))
            continue
        batch = history.add(frame, source=str(path), sha256=digest, mode=mode)
        ledger.record(digest, str(path), "processed", run_id=run_id)
        outcomes.append(FileOutcome(str(path), digest, "processed", rows_added=batch.rows_added))
    return NewData(outcomes)


def retrain(
    raw: pd.DataFrame,
    ctx: CycleContext,
    *,
    run_id: str,
    train_config: TrainConfig,
    gate_config: GateConfig,
    source: str,
    progress: Progress | None = None,
    cleaned: Cleaned | None = None,
) -> ChallengerOutcome:
    """Retrain on ``raw`` transactions under the training lock, gate the challenger against the
    champion, and register it: as champion (files published) when it wins, with the reason when not.
    The version records ``run_id``, the run that retrained (see :meth:`ModelRegistry.of_run`);
    ``cleaned`` is ``clean_transactions(raw)`` when the caller has it already."""
    from clvdrift.pipeline.retrain import retrain_and_gate
    from clvdrift.store.locks import training_lock

    registry, workspace = ctx.registry, ctx.workspace
    with training_lock(ctx.engine):
        champion, model = load_champion(registry, workspace.models_dir)
        clean, cleaning = cleaned if cleaned is not None else clean_transactions(raw)
        trained_on = training_customers(workspace.models_dir / champion.artifacts["reference"]["path"])
        outcome = retrain_and_gate(
            clean,
            champion_model=model,
            champion_version=champion.version,
            champion_training=champion.training,
            champion_train_customers=set(trained_on),
            train_config=train_config,
            gate_config=gate_config,
            progress=progress,
        )
        gate = outcome.decision.to_dict()
        fitted = outcome.final if outcome.final is not None else outcome.challenger
        fitted = dataclasses.replace(fitted, training={**fitted.training, "gate": gate})
        version, _, _, _ = register_version(
            fitted,
            registry=registry,
            models_dir=workspace.models_dir,
            reference_dir=workspace.reference_dir,
            cleaning=cleaning.to_dict(),
            fingerprint={"source": source, "rows": len(raw)},
            champion=outcome.promoted,
            run_id=run_id,
        )
    return ChallengerOutcome(
        version=version,
        outcome="promoted" if outcome.promoted else "rejected",
        reason=outcome.decision.reason,
        gate=gate,
    )


@dataclass(frozen=True)
class CycleContext:
    """What every step of a cycle works on: the workspace, its store and the model registry."""

    workspace: Workspace
    engine: Engine
    registry: ModelRegistry

    @classmethod
    def open(cls, workspace: Workspace) -> CycleContext:
        """Connect to the workspace's store (migrated to the newest schema)."""
        from clvdrift.model.registry import ModelRegistry
        from clvdrift.store import connect

        engine = connect(workspace.database_url)
        return cls(workspace, engine, ModelRegistry(engine))


@dataclass(frozen=True)
class DriftOutcome:
    """The part of a drift check the run history records and the Airflow DAG branches on."""

    data_drift: bool
    model_drift: bool
    retraining_required: bool
    model_version: str
    reasons: list[str]
    report: str
    check: CheckSummary

    @classmethod
    def of(cls, detected: DetectResult) -> DriftOutcome:
        data, model = detected.data_drift, detected.model_drift
        performance = {k: (model.current or {}).get(k) for k in PERFORMANCE_METRICS}
        check = CheckSummary(
            model_version=detected.model_version,
            data_drift=bool(data.dataset_drift),
            model_drift=bool(model.detected),
            drift_share=float(data.drift_share),
            drifted_columns=int(data.number_of_drifted_columns),
            column_scores={c.column: c.statistic for c in data.columns},
            performance=performance,
            rows=int(detected.current.rows),
            customers=int(detected.current.customers),
        )
        return cls(
            data_drift=bool(detected.decision.data_drift_detected),
            model_drift=bool(detected.decision.model_drift_detected),
            retraining_required=bool(detected.retraining_required),
            model_version=detected.model_version,
            reasons=list(detected.decision.reasons),
            report=detected.reports["json"],
            check=check,
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DriftOutcome:
        fields = {f.name: values[f.name] for f in dataclasses.fields(cls)}
        return cls(**{**fields, "check": CheckSummary.from_dict(values["check"])})

    @property
    def decision(self) -> str:
        return "retrain" if self.retraining_required else "no_retrain"

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def start_run(ctx: CycleContext, run_id: str, trigger: str, mode: BatchMode) -> bool:
    """Start the ``runs`` row ``run_id``; ``False`` when an earlier attempt (a retried task) started it."""
    from clvdrift.store.runs import RunStore

    runs = RunStore(ctx.engine)
    try:
        runs.start(run_id, trigger, {"current_dir": str(ctx.workspace.current_dir), "mode": mode})
    except RegistryError:
        runs.get(run_id)  # an unknown id means the start failed for another reason: raises
        return False
    return True


def finish_run(ctx: CycleContext, run_id: str, *, status: str, **fields: Any) -> bool:
    """Finish the ``runs`` row ``run_id`` unless an earlier attempt did; ``True`` when this call did."""
    from clvdrift.store.runs import RUNNING, RunStore

    runs = RunStore(ctx.engine)
    if runs.get(run_id).status != RUNNING:
        return False
    record = runs.finish(run_id, status=status, **fields)
    with log_context(run_id=run_id, model_version=record.champion_version):
        drifts = [k for k, v in (("data", record.data_drift), ("model", record.model_drift)) if v]
        level = log.error if status == "failed" else log.warning if drifts else log.info
        level(
            "monitoring run %s: %s",
            status,
            f"{' and '.join(drifts)} drift detected" if drifts else record.error or record.decision,
            extra={
                "decision": record.decision,
                "data_drift": record.data_drift,
                "model_drift": record.model_drift,
                "status": status,
            },
        )
        publish_metrics(ctx, run_id)
    return True


def publish_metrics(ctx: CycleContext, run_id: str | None = None) -> PublishOutcome:
    """Export the store's metrics (Pushgateway when the workspace names one, else its textfile).

    A failure is logged and, with ``run_id``, recorded in that run's ``details["metrics"]``; it never
    fails the cycle.
    """
    from clvdrift.observability.metrics import publish, snapshot
    from clvdrift.store.runs import RunStore

    ws = ctx.workspace
    champion = ctx.registry.champion()
    outcome = publish(
        snapshot(ctx.engine, champion.version if champion else None),
        pushgateway_url=ws.pushgateway_url,
        textfile=ws.metrics_textfile,
    )
    if outcome.ok:
        log.info("metrics published to %s %s", outcome.target, outcome.destination)
    else:
        log.warning("metrics not published to %s %s: %s", outcome.target, outcome.destination, outcome.error)
    if run_id is not None:
        RunStore(ctx.engine).add_details(run_id, metrics=outcome.to_dict())
    return outcome


def take_new_data(ctx: CycleContext, run_id: str, mode: BatchMode) -> tuple[NewData, list[FileOutcome]]:
    """Heal a crash between register and publish, then :func:`check_new_data` on the workspace.

    Returns what was found and the files this run brought into the history: those it processed, and
    those an earlier attempt of the same run processed (the ledger names the run), so a retry sees them.
    """
    from clvdrift.data.history import TransactionHistory
    from clvdrift.model.artifacts import ensure_champion_published
    from clvdrift.store.ledger import Ledger

    ws = ctx.workspace
    ensure_champion_published(ctx.registry, ws.models_dir, ws.reference_dir)
    ledger = Ledger(ctx.engine)
    new = check_new_data(
        ws.current_dir,
        ws.quarantine_dir,
        ledger=ledger,
        history=TransactionHistory(ws.history_dir, ctx.engine),
        mode=mode,
        run_id=run_id,
    )
    ours = [
        f
        for f in new.files
        if f.status == "processed"
        or (f.status == "seen before" and (rec := ledger.get(f.sha256)) is not None and rec.run_id == run_id)
    ]
    if not ours:
        rechecks = _taken_in_by_a_failed_run(ctx, ledger)
        if rechecks:
            done = {f.sha256 for f in rechecks}
            return NewData([*(f for f in new.files if f.sha256 not in done), *rechecks]), rechecks
    return new, ours


def _taken_in_by_a_failed_run(ctx: CycleContext, ledger: Ledger) -> list[FileOutcome]:
    """The files the previous run added to the history when that run then failed (before its check).

    They are in the ledger, so they are not new; without this the next run would end ``skipped`` and
    the data would never be checked. The next run checks them again (status ``recheck``).
    """
    from clvdrift.store.runs import RunStore

    last = RunStore(ctx.engine).latest_finished()
    if last is None or last.status != "failed":
        return []
    return [
        FileOutcome(r.path, r.sha256, "recheck", reason=f"taken in by run {last.run_id}, which failed")
        for r in ledger.list("processed")
        if r.run_id == last.run_id
    ]


def finish_skipped(ctx: CycleContext, run_id: str, new: NewData, durations: dict[str, float]) -> str | None:
    """Finish the run as ``skipped`` (no new data); the champion's version."""
    champion = ctx.registry.champion()
    version = champion.version if champion else None
    finish_run(
        ctx,
        run_id,
        status="skipped",
        decision="no_new_data",
        durations=durations,
        champion_version=version,
        details={"files": new.to_dict()["files"]},
    )
    return version


def read_history(ctx: CycleContext, run_id: str) -> tuple[pd.DataFrame, str]:
    """The transaction history's rows and how a report names them."""
    from clvdrift.data.history import TransactionHistory

    history = TransactionHistory(ctx.workspace.history_dir, ctx.engine)
    return history.read(), f"transaction history ({len(history.batches())} batches), {run_id}"


def detect_history(
    ctx: CycleContext,
    raw: pd.DataFrame,
    source: str,
    config: DriftConfig,
    *,
    render_html: bool = False,
    cleaned: Cleaned | None = None,
) -> DetectResult:
    """The history ``raw`` against the champion (:func:`detect_transactions`; ``cleaned``: its
    cleaned form when the caller has it)."""
    return detect_transactions(
        raw,
        registry=ctx.registry,
        models_dir=ctx.workspace.models_dir,
        reports_dir=ctx.workspace.reports_dir,
        source=source,
        config=config,
        render_html=render_html,
        cleaned=cleaned,
    )


def finish_decided(
    ctx: CycleContext,
    run_id: str,
    outcome: DriftOutcome,
    *,
    new: NewData | None = None,
    challenger: ChallengerOutcome | None = None,
    durations: dict[str, float] | None = None,
) -> bool:
    """Finish the run as ``success`` with the drift decision (and the challenger when retrained here)."""
    files = {"files": new.to_dict()["files"]} if new is not None else {}
    return finish_run(
        ctx,
        run_id,
        status="success",
        champion_version=outcome.model_version,
        data_drift=outcome.data_drift,
        model_drift=outcome.model_drift,
        decision=outcome.decision,
        challenger=challenger.to_dict() if challenger else None,
        durations=durations,
        details={
            **files,
            "report": outcome.report,
            "reasons": outcome.reasons,
            "check": outcome.check.to_dict(),
        },
    )


def monitor_cycle(
    workspace: Workspace,
    *,
    mode: BatchMode = "snapshot",
    trigger: str = "cli",
    train_config: TrainConfig = TrainConfig(),
    drift_config: DriftConfig = DriftConfig(),
    gate_config: GateConfig = GateConfig(),
    render_html: bool = False,
    progress: Progress | None = None,
) -> CycleResult:
    """One monitoring cycle (module docstring), recorded in the run history; a failure is recorded
    with its error and raised. The steps are those the Airflow tasks (``pipeline/tasks.py``) call."""
    ctx = CycleContext.open(workspace)
    run_id = "cycle_" + new_version()
    start_run(ctx, run_id, trigger, mode)
    t = Timings()
    try:
        with t.step("check new data", progress):
            new, ours = take_new_data(ctx, run_id, mode)
        if not ours:
            version = finish_skipped(ctx, run_id, new, t.seconds)
            return CycleResult(run_id, trigger, "skipped", "no_new_data", new, None, None, version, t.seconds)
        with t.step("detect", progress):
            raw, source = read_history(ctx, run_id)
            detected = detect_history(ctx, raw, source, drift_config, render_html=render_html)
        outcome = DriftOutcome.of(detected)
        challenger = None
        if outcome.retraining_required:
            with t.step("retrain", progress):
                challenger = retrain(
                    raw,
                    ctx,
                    run_id=run_id,
                    train_config=train_config,
                    gate_config=gate_config,
                    source=source,
                    progress=progress,
                )
        champion = ctx.registry.champion()
        finish_decided(ctx, run_id, outcome, new=new, challenger=challenger, durations=t.seconds)
        return CycleResult(
            run_id,
            trigger,
            "success",
            outcome.decision,
            new,
            detected,
            challenger,
            champion.version if champion else None,
            t.seconds,
        )
    except ClvdriftError as exc:
        finish_run(ctx, run_id, status="failed", error=str(exc), durations=t.seconds)
        raise
    except Exception as exc:
        error = f"unexpected {type(exc).__name__}: {exc}"
        finish_run(ctx, run_id, status="failed", error=error, durations=t.seconds)
        raise
