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

Every cycle is one row of the run history (started, then finished as ``success``, ``skipped`` or
``failed`` with the error): the source of truth for counters such as "drift detected, total".
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from clvdrift.config import DriftConfig, GateConfig, TrainConfig
from clvdrift.data import clean_transactions, load_transactions
from clvdrift.errors import ClvdriftError, DataError
from clvdrift.io import sha256_file
from clvdrift.jsonable import dataclass_dict
from clvdrift.pipeline.common import Progress, Timings, Workspace, load_champion, new_version
from clvdrift.pipeline.detect import DetectResult, detect_transactions, training_customers
from clvdrift.pipeline.train import register_version

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

    from clvdrift.data.history import TransactionHistory
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.store.ledger import Ledger

BatchMode = Literal["snapshot", "append"]
TRANSACTION_SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz", ".xlsx", ".xlsm", ".parquet", ".pq")


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file of ``current_dir``."""

    path: str
    sha256: str
    status: str  # "processed" | "quarantined" | "seen before"
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
    *,
    engine: Engine,
    registry: ModelRegistry,
    workspace: Workspace,
    train_config: TrainConfig,
    gate_config: GateConfig,
    source: str,
    progress: Progress | None = None,
) -> ChallengerOutcome:
    """Retrain on ``raw`` transactions under the training lock, gate the challenger against the
    champion, and register it: as champion (files published) when it wins, with the reason when not."""
    from clvdrift.pipeline.retrain import retrain_and_gate
    from clvdrift.store.locks import training_lock

    with training_lock(engine):
        champion, model = load_champion(registry, workspace.models_dir)
        clean, cleaning = clean_transactions(raw)
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
        )
    return ChallengerOutcome(
        version=version,
        outcome="promoted" if outcome.promoted else "rejected",
        reason=outcome.decision.reason,
        gate=gate,
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
    with its error and raised."""
    from clvdrift.data.history import TransactionHistory
    from clvdrift.model.artifacts import ensure_champion_published
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.store import connect
    from clvdrift.store.ledger import Ledger
    from clvdrift.store.runs import RunStore

    ws = workspace
    engine = connect(ws.database_url)
    registry = ModelRegistry(engine)
    ensure_champion_published(
        registry, ws.models_dir, ws.reference_dir
    )  # heal a crash between register and publish
    runs = RunStore(engine)
    run_id = "cycle_" + new_version()
    runs.start(run_id, trigger, {"current_dir": str(ws.current_dir), "mode": mode})
    t = Timings()
    history = TransactionHistory(ws.history_dir, engine)
    try:
        with t.step("check new data", progress):
            new = check_new_data(
                ws.current_dir,
                ws.quarantine_dir,
                ledger=Ledger(engine),
                history=history,
                mode=mode,
                run_id=run_id,
            )
        if not new.processed:
            champion = registry.champion()
            result = CycleResult(
                run_id,
                trigger,
                "skipped",
                "no_new_data",
                new,
                None,
                None,
                champion.version if champion else None,
                t.seconds,
            )
            runs.finish(
                run_id,
                status="skipped",
                decision="no_new_data",
                durations=t.seconds,
                champion_version=result.champion_version,
                details={"files": new.to_dict()["files"]},
            )
            return result
        with t.step("detect", progress):
            raw = history.read()
            source = (
                f"transaction history ({len(history.batches())} batches, newest {new.processed[-1].path})"
            )
            detected = detect_transactions(
                raw,
                registry=registry,
                models_dir=ws.models_dir,
                reports_dir=ws.reports_dir,
                source=source,
                config=drift_config,
                render_html=render_html,
            )
        challenger = None
        if detected.retraining_required:
            with t.step("retrain", progress):
                challenger = retrain(
                    raw,
                    engine=engine,
                    registry=registry,
                    workspace=ws,
                    train_config=train_config,
                    gate_config=gate_config,
                    source=source,
                    progress=progress,
                )
        champion = registry.champion()
        result = CycleResult(
            run_id,
            trigger,
            "success",
            "retrain" if detected.retraining_required else "no_retrain",
            new,
            detected,
            challenger,
            champion.version if champion else None,
            t.seconds,
        )
        runs.finish(
            run_id,
            status="success",
            champion_version=detected.model_version,
            data_drift=detected.decision.data_drift_detected,
            model_drift=detected.decision.model_drift_detected,
            decision=result.decision,
            challenger=challenger.to_dict() if challenger else None,
            durations=t.seconds,
            details={
                "files": new.to_dict()["files"],
                "report": detected.reports["json"],
                "reasons": detected.decision.reasons,
            },
        )
        return result
    except ClvdriftError as exc:
        runs.finish(run_id, status="failed", error=str(exc), durations=t.seconds)
        raise
    except Exception as exc:
        runs.finish(
            run_id, status="failed", error=f"unexpected {type(exc).__name__}: {exc}", durations=t.seconds
        )
        raise
