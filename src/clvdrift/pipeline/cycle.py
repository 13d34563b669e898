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

import contextlib
import dataclasses
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from clvdrift.config import DriftConfig, GateConfig, LoopConfig, TrainConfig
from clvdrift.errors import ClvdriftError, RegistryError, storage_error
from clvdrift.faults import fault_point
from clvdrift.jsonable import dataclass_dict
from clvdrift.observability.logging import get_logger, log_context
from clvdrift.observability.metrics import PERFORMANCE_METRICS, CheckSummary, PublishOutcome
from clvdrift.pipeline.common import Progress, Timings, Workspace, load_champion, new_id
from clvdrift.pipeline.detect import DetectResult, detect_transactions, training_customers
from clvdrift.pipeline.intake import FileOutcome, NewData
from clvdrift.pipeline.train import register_version
from clvdrift.store.ledger import display_path

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

    from clvdrift.data.history import TransactionHistory
    from clvdrift.engines import Source
    from clvdrift.io import ProcessIdentity
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.pipeline.common import Cleaned
    from clvdrift.store.locks import HeldLock
    from clvdrift.store.runs import RunStore

log = get_logger(__name__)
BatchMode = Literal["snapshot", "append"]


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
    status: str  # "success" | "partial" | "rejected" | "skipped"
    decision: str  # "no_new_data" | "no_retrain" | "retrain"
    new_data: NewData
    detect: DetectResult | None
    challenger: ChallengerOutcome | None
    champion_version: str | None
    timings: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def retrain(
    raw: pd.DataFrame | Source | None,
    ctx: CycleContext,
    *,
    run_id: str,
    train_config: TrainConfig,
    gate_config: GateConfig,
    source: str,
    progress: Progress | None = None,
    cleaned: Cleaned | None = None,
    lock_wait_seconds: float = 0.0,
) -> ChallengerOutcome:
    """Retrain on ``raw`` transactions under the training lock, gate the challenger against the
    champion, and register it: as champion (files published) when it wins, with the reason when not.
    The version records ``run_id``, the run that retrained (see :meth:`ModelRegistry.of_run`);
    ``cleaned`` is the data already cleaned by an engine (then ``raw`` may be ``None``), else ``raw`` is
    cleaned with the workspace's engine; ``lock_wait_seconds``: how long to wait for another training
    (0: :class:`LockBusyError` at once)."""
    from clvdrift.model.artifacts import read_verified
    from clvdrift.model.base import TrainingRecord
    from clvdrift.pipeline.retrain import retrain_and_gate
    from clvdrift.pipeline.train import ChampionToBeat
    from clvdrift.store.locks import training_lock

    registry, workspace = ctx.registry, ctx.workspace
    if cleaned is None:
        if raw is None:
            raise ValueError("retrain needs raw transactions or an engine's clean lines")
        with workspace.engines.open(raw) as opened:
            return retrain(
                raw,
                ctx,
                run_id=run_id,
                train_config=train_config,
                gate_config=gate_config,
                source=source,
                progress=progress,
                cleaned=opened,
                lock_wait_seconds=lock_wait_seconds,
            )
    with training_lock(ctx.engine, wait_seconds=lock_wait_seconds):
        champion, model = load_champion(registry, workspace.models_dir)
        clean, cleaning = cleaned.lines, cleaned.cleaning
        trained_on = training_customers(read_verified(workspace.models_dir, champion.artifacts["reference"]))
        outcome = retrain_and_gate(
            clean,
            champion=ChampionToBeat(
                champion.version, model, TrainingRecord.from_dict(champion.training), frozenset(trained_on)
            ),
            train_config=train_config,
            gate_config=gate_config,
            progress=progress,
        )
        gate = outcome.decision.to_dict()
        fitted = outcome.final if outcome.final is not None else outcome.challenger
        fitted = dataclasses.replace(fitted, training=dataclasses.replace(fitted.training, gate=gate))
        fault_point("cycle.retraining")
        version, _, _, _ = register_version(
            fitted,
            registry=registry,
            models_dir=workspace.models_dir,
            reference_dir=workspace.reference_dir,
            cleaning=cleaning.to_dict(),
            fingerprint={"source": source, "rows": cleaning.rows_in},
            champion=outcome.promoted,
            run_id=run_id,
        )
        fault_point("cycle.registered")
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
            reference_performance={k: (model.reference or {}).get(k) for k in PERFORMANCE_METRICS},
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


def start_run(
    ctx: CycleContext, run_id: str, trigger: str, mode: BatchMode, *, owner: ProcessIdentity | None = None
) -> bool:
    """Start the ``runs`` row ``run_id``; ``False`` when an earlier attempt (a retried task) started it.

    ``owner``: the process that carries the whole run (the CLI's cycle), so a later cycle can tell it
    died; ``None`` for a run carried by several processes in turn (Airflow's tasks).
    """
    from clvdrift.store.runs import RunStore

    runs = RunStore(ctx.engine)
    try:
        runs.start(
            run_id,
            trigger,
            {"current_dir": display_path(ctx.workspace.current_dir), "mode": mode},
            owner=owner,
        )
    except RegistryError:
        runs.get(run_id)  # an unknown id means the start failed for another reason: raises
        runs.heartbeat(run_id)
        return False
    return True


@contextmanager
def cycle_lock(
    ctx: CycleContext, wait_seconds: float = 0.0, *, doing: str = "taken in"
) -> Iterator[HeldLock]:
    """One cycle at a time per store: the store's ``cycle`` lock (released by the kernel or the database
    when its holder dies); :class:`clvdrift.errors.LockBusyError` (exit 5) while another cycle holds it,
    saying nothing was ``doing`` (a repair holds it too)."""
    from clvdrift.store.locks import training_lock

    if wait_seconds:
        hint = f"nothing was {doing}; waited {wait_seconds:g} s"
    elif doing == "taken in":
        hint = "nothing was taken in; try again later or pass --wait SECONDS"
    else:
        hint = f"nothing was {doing}; try again when it has finished"
    with training_lock(
        ctx.engine,
        name="monitoring-cycle",
        wait_seconds=wait_seconds,
        busy="another monitoring cycle is running on this store",
        hint=hint,
    ) as held:
        yield held


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


def take_new_data(
    ctx: CycleContext, run_id: str, mode: BatchMode, loop: LoopConfig = LoopConfig()
) -> NewData:
    """Reap dead runs, heal a crash between register and publish, check the history's parts, then take
    the new files in.

    The caller holds :func:`cycle_lock`. Besides the new files, the result lists as ``recheck`` every
    file taken in earlier whose check no finished run completed (its run failed, was stopped or died, or
    this is a retry of the same run); the run's ``details["taken"]`` records what it is to check.
    """
    from clvdrift.data.history import TransactionHistory, current_batches
    from clvdrift.model.artifacts import ensure_champion_published
    from clvdrift.pipeline.intake import take_in_files
    from clvdrift.store.ledger import Ledger
    from clvdrift.store.runs import RunStore

    ws = ctx.workspace
    runs = RunStore(ctx.engine)
    reaped = [r.run_id for r in runs.reap(by=run_id)]
    for r in reaped:
        log.warning("run %s was left running by a process that is gone: recorded as failed", r)
    ensure_champion_published(ctx.registry, ws.models_dir, ws.reference_dir)
    ledger = Ledger(ctx.engine)
    history = TransactionHistory(ws.history_dir, ctx.engine)
    history.check()  # a damaged history stops every cycle (exit 3), not only those with new files
    if runs.latest_finished() is None:  # the first cycle makes its drop folder; later, a missing one is said
        with contextlib.suppress(OSError):  # cannot: the take-in says what is wrong with it
            ws.current_dir.mkdir(parents=True, exist_ok=True)
    files = take_in_files(
        ws.current_dir,
        ws.quarantine_dir,
        ledger=ledger,
        history=history,
        mode=mode,
        run_id=run_id,
        settle_seconds=loop.settle_seconds,
        suspect_settle_seconds=loop.suspect_settle_seconds,
        max_snapshot_shrink=loop.max_snapshot_shrink,
        baseline_rows=_history_rows(ctx, history),
    )
    recorded = {r.sha256 for r in ledger.list()}
    for batch in current_batches(history.batches()):
        if batch.sha256 not in recorded:  # its run was stopped before the ledger entry, and its file is gone
            why = "in the history without a ledger entry (its run was stopped before recording it)"
            ledger.record(batch.sha256, batch.source, "processed", reason=why, run_id=run_id)
    taken = {f.sha256 for f in files if f.status == "processed"}
    live = {r.run_id for r in runs.running()} - {run_id}
    rechecks = [
        FileOutcome(
            r.path,
            r.sha256,
            "recheck",
            reason=(r.reason or "taken in by an earlier attempt of this run")
            if r.run_id == run_id
            else f"ingested through the API (request {r.run_id}), not checked yet"
            if r.path.startswith("api/")
            else f"taken in by run {r.run_id}, which did not finish its check",
        )
        for r in ledger.unchecked()
        if r.sha256 not in taken and r.run_id not in live
    ]
    again = {(f.sha256, f.path) for f in rechecks}  # a file rechecked is listed once, as such
    new = NewData([*(f for f in files if (f.sha256, f.path) not in again), *rechecks], reaped=reaped)
    _record_taken(runs, run_id, new)
    runs.heartbeat(run_id)
    return new


def _record_taken(runs: RunStore, run_id: str, new: NewData) -> None:
    """Record in the run what it took in: what to check, what it could not use, each file's outcome.
    A retried attempt (Airflow) adds to what an earlier attempt recorded, never erases it."""
    before = runs.get(run_id).details or {}
    now = {f.path for f in new.files}
    runs.add_details(
        run_id,
        taken=sorted({*before.get("taken", []), *(f.sha256 for f in new.to_check)}),
        not_taken_in=sorted({*before.get("not_taken_in", []), *(f.path for f in new.not_taken_in)}),
        files=[*(f for f in before.get("files", []) if f.get("path") not in now), *new.to_dict()["files"]],
        reaped=[*before.get("reaped", []), *(new.reaped or [])],
    )


def _history_rows(ctx: CycleContext, history: TransactionHistory) -> int | None:
    """The rows a new snapshot replaces: the history's, or the champion's training rows without one."""
    from clvdrift.data.history import current_batches

    batches = current_batches(history.batches())
    if batches:
        return sum(b.rows_added for b in batches)
    champion = ctx.registry.champion()
    rows = (champion.data_fingerprint or {}).get("rows") if champion else None
    return int(rows) if isinstance(rows, int) else None


def finish_skipped(ctx: CycleContext, run_id: str, durations: dict[str, float]) -> str | None:
    """Finish a run with nothing to check: ``rejected`` when new files could not be used (quarantined,
    unreadable: its ``details["not_taken_in"]``), else ``skipped``; the champion's version."""
    from clvdrift.store.runs import RunStore

    champion = ctx.registry.champion()
    version = champion.version if champion else None
    details = RunStore(ctx.engine).get(run_id).details or {}
    finish_run(
        ctx,
        run_id,
        status="rejected" if details.get("not_taken_in") else "skipped",
        decision="no_new_data",
        durations=durations,
        champion_version=version,
    )
    return version


def read_history(ctx: CycleContext, run_id: str) -> tuple[Source, str]:
    """The transaction history's part files (checked) and how a report names them."""
    from clvdrift.data.history import TransactionHistory
    from clvdrift.engines import Source

    history = TransactionHistory(ctx.workspace.history_dir, ctx.engine)
    parts = history.parts()
    name = f"transaction history ({len(parts)} batch{'es' if len(parts) != 1 else ''}), {run_id}"
    return Source.of_parts(parts, name=name), name


def detect_history(
    ctx: CycleContext,
    raw: pd.DataFrame | Source | None,
    source: str,
    config: DriftConfig,
    *,
    render_html: bool = False,
    cleaned: Cleaned | None = None,
) -> DetectResult:
    """The history against the champion (:func:`detect_transactions`): ``cleaned`` by an engine, or
    ``raw`` cleaned with the workspace's engine."""
    return detect_transactions(
        raw,
        registry=ctx.registry,
        models_dir=ctx.workspace.models_dir,
        reports_dir=ctx.workspace.reports_dir,
        source=source,
        config=config,
        render_html=render_html,
        cleaned=cleaned,
        engines=ctx.workspace.engines,
    )


def record_found(ctx: CycleContext, run_id: str, outcome: DriftOutcome) -> None:
    """Record the drift check's findings on the running run before retraining, so a run that fails
    afterwards (lock busy, training error, a kill) still counts the drift it detected."""
    from clvdrift.store.runs import RunStore

    runs = RunStore(ctx.engine)
    runs.record_found(
        run_id,
        champion_version=outcome.model_version,
        data_drift=outcome.data_drift,
        model_drift=outcome.model_drift,
        decision=outcome.decision,
    )
    runs.add_details(run_id, report=outcome.report, reasons=outcome.reasons, check=outcome.check.to_dict())


def finish_decided(
    ctx: CycleContext,
    run_id: str,
    outcome: DriftOutcome,
    *,
    challenger: ChallengerOutcome | None = None,
    durations: dict[str, float] | None = None,
) -> bool:
    """Finish the run with the drift decision (and the challenger when retrained here): ``partial`` when
    new files were quarantined or unreadable, else ``success``. The files the run took in or rechecked
    (its ``details["taken"]``) are then checked."""
    from clvdrift.store.ledger import Ledger
    from clvdrift.store.runs import RunStore

    runs = RunStore(ctx.engine)
    details = runs.get(run_id).details or {}
    partial = bool(details.get("not_taken_in"))
    finished = finish_run(
        ctx,
        run_id,
        status="partial" if partial else "success",
        champion_version=outcome.model_version,
        data_drift=outcome.data_drift,
        model_drift=outcome.model_drift,
        decision=outcome.decision,
        challenger=challenger.to_dict() if challenger else None,
        durations=durations,
        details={
            **details,
            "report": outcome.report,
            "reasons": outcome.reasons,
            "check": outcome.check.to_dict(),
        },
    )
    if finished:  # a retried finish of a run that finished already changes nothing
        Ledger(ctx.engine).mark_checked(list(details.get("taken") or []), run_id)
    return finished


def _stopped(exc: BaseException) -> str:
    """The error recorded for a run ended by a signal or Ctrl-C."""
    if isinstance(exc, KeyboardInterrupt):
        return "stopped: interrupted (Ctrl-C)"
    code = exc.code if isinstance(exc, SystemExit) else None
    if isinstance(code, int) and code > 128:
        return f"stopped: signal {signal.Signals(code - 128).name}"
    return f"stopped: exit {code}"


def monitor_cycle(
    workspace: Workspace,
    *,
    mode: BatchMode = "snapshot",
    trigger: str = "cli",
    train_config: TrainConfig = TrainConfig(),
    drift_config: DriftConfig = DriftConfig(),
    gate_config: GateConfig = GateConfig(),
    loop_config: LoopConfig = LoopConfig(),
    render_html: bool = False,
    progress: Progress | None = None,
) -> CycleResult:
    """One monitoring cycle (module docstring), under the store's cycle lock, recorded in the run
    history; a failure — an error, SIGTERM, Ctrl-C — is recorded with its reason and raised. The steps
    are those the Airflow tasks (``pipeline/tasks.py``) call."""
    from clvdrift.io import ProcessIdentity
    from clvdrift.store.runs import RunStore

    ctx = CycleContext.open(workspace)
    with cycle_lock(ctx, loop_config.lock_wait_seconds) as lock, contextlib.ExitStack() as stack:
        run_id = new_id("cycle")
        start_run(ctx, run_id, trigger, mode, owner=ProcessIdentity.current())
        t = Timings()
        try:
            fault_point("cycle.started")
            with t.step("check new data", progress):
                new = take_new_data(ctx, run_id, mode, loop_config)
            fault_point("cycle.taken_in")
            if not new.to_check:
                version = finish_skipped(ctx, run_id, t.seconds)
                status = "rejected" if new.not_taken_in else "skipped"
                return CycleResult(
                    run_id, trigger, status, "no_new_data", new, None, None, version, t.seconds
                )
            with t.step("detect", progress):
                history, source = read_history(ctx, run_id)
                opened = stack.enter_context(ctx.workspace.engines.open(history))
                RunStore(ctx.engine).add_details(run_id, engine=opened.engine, engine_choice=opened.reason)
                detected = detect_history(
                    ctx, None, source, drift_config, render_html=render_html, cleaned=opened
                )
            outcome = DriftOutcome.of(detected)
            record_found(ctx, run_id, outcome)
            fault_point("cycle.detected")
            challenger = None
            if outcome.retraining_required and loop_config.retrain == "queue":
                from clvdrift.pipeline.jobs import request_retrain

                job = request_retrain(
                    ctx.engine, "cycle", f"run {run_id}: " + "; ".join(outcome.reasons), unless_pending=True
                )
                RunStore(ctx.engine).add_details(run_id, retrain_job=job.job_id if job else "pending already")
            elif outcome.retraining_required:
                lock.ensure_held()  # a lost lock may let another cycle retrain on the same data
                with t.step("retrain", progress):
                    challenger = retrain(
                        None,
                        ctx,
                        run_id=run_id,
                        train_config=train_config,
                        gate_config=gate_config,
                        source=source,
                        progress=progress,
                        cleaned=opened,
                    )
            champion = ctx.registry.champion()
            lock.ensure_held()
            finish_decided(ctx, run_id, outcome, challenger=challenger, durations=t.seconds)
            fault_point("cycle.finished")
            return CycleResult(
                run_id,
                trigger,
                RunStore(ctx.engine).get(run_id).status,
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
            disk = storage_error(exc)
            error = str(disk) if disk is not None else f"unexpected {type(exc).__name__}: {exc}"
            finish_run(ctx, run_id, status="failed", error=error, durations=t.seconds)
            raise
        except BaseException as exc:  # SIGTERM (SystemExit from the CLI's handler), Ctrl-C
            finish_run(ctx, run_id, status="failed", error=_stopped(exc), durations=t.seconds)
            raise
