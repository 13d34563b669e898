"""Run history of the monitoring loop: one ``runs`` row per cycle, the source of truth of its metrics.

A run is started once (``status="running"``) and finished once. Starting a run id that exists is an
error: that is how a retried task (an Airflow retry reuses its run id) is told apart from a new run.
Totals are counted by SQL from the table at each call, never kept in the process, so every process
(CLI, Airflow worker, API) reports the same numbers.

Kinds (:data:`KINDS`): ``monitor`` rows are monitoring cycles, the only ones the loop's run totals
count; ``promote`` and ``rollback`` rows record a champion change made by hand, ``repair`` rows a
repair of the transaction history (``clvdrift history drop``).

Final statuses (:data:`FINAL_STATUSES`): ``success`` (new data checked), ``partial`` (new data checked,
and some new files quarantined), ``rejected`` (every new file quarantined: nothing to check),
``skipped`` (no new data), ``failed`` (an error, or the run was stopped or its process died).

A running row names its owner: ``host``, ``pid`` and the process's start time (``pid_started``, so a
recycled PID is not taken for the owner), and ``heartbeat_at``, renewed while it works.
:meth:`RunStore.reap` finishes as ``failed`` the running rows whose owner is gone: on this host, a PID
that is not alive or started at another time; elsewhere (or without a PID, as Airflow's tasks), a
heartbeat older than the lease.
"""

from __future__ import annotations

import builtins
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clvdrift.errors import NotFoundError, RegistryError
from clvdrift.io import ProcessIdentity
from clvdrift.jsonable import dataclass_dict
from clvdrift.store.db import session_scope
from clvdrift.store.ledger import as_utc
from clvdrift.store.tables import RunRow

TRIGGERS: tuple[str, ...] = ("cli", "airflow", "schedule", "api", "replay", "worker", "deploy")
KINDS: tuple[str, ...] = ("monitor", "promote", "rollback", "repair", "retrain")
MONITOR = "monitor"
RUNNING = "running"
FINAL_STATUSES: tuple[str, ...] = ("success", "partial", "rejected", "skipped", "failed")
DECISIONS: tuple[str, ...] = ("retrain", "no_retrain", "no_new_data", "rollback", "promote", "drop_batch")
LEASE_SECONDS = 3600.0
"""A running row whose owner cannot be asked (another host, or no PID) is dead after this long without
a heartbeat."""
TOTAL_KEYS: tuple[str, ...] = (
    "runs",
    RUNNING,
    *FINAL_STATUSES,
    "data_drift",
    "model_drift",
    "retrains",
    "promotions",
    "rejections",
    "rollbacks",
    "manual_promotions",
)
"""The keys of :meth:`RunStore.totals`, always all present (0 when nothing was counted). ``runs``, the
statuses, drift and retrains count monitoring runs only; ``promotions``/``rejections`` are the gate's
verdicts; ``rollbacks``/``manual_promotions`` the champion changes made by hand (that succeeded)."""


@dataclass(frozen=True)
class RunRecord:
    """One monitoring run as stored (datetimes timezone-aware UTC)."""

    run_id: str
    trigger: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    error: str | None
    inputs: Any
    champion_version: str | None
    data_drift: bool | None
    model_drift: bool | None
    decision: str | None
    challenger: dict[str, Any] | None
    durations: dict[str, Any]
    details: dict[str, Any]
    kind: str = MONITOR
    host: str | None = None
    pid: int | None = None
    pid_started: str | None = None
    heartbeat_at: datetime | None = None

    @classmethod
    def _from_row(cls, row: RunRow) -> RunRecord:
        values = {f: getattr(row, f) for f in cls.__dataclass_fields__}
        values["started_at"] = as_utc(row.started_at)
        values["finished_at"] = as_utc(row.finished_at) if row.finished_at else None
        values["heartbeat_at"] = as_utc(row.heartbeat_at) if row.heartbeat_at else None
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def _check(value: str | None, allowed: tuple[str, ...], what: str, run_id: str) -> None:
    if value is not None and value not in allowed:
        raise RegistryError(f"run {run_id}: {what} {value!r} is not one of {', '.join(allowed)}")


class RunStore:
    """Reads and writes the ``runs`` table; every call is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(
        self,
        run_id: str,
        trigger: str,
        inputs: Any,
        *,
        kind: str = MONITOR,
        owner: ProcessIdentity | None = None,
    ) -> RunRecord:
        """Record a new run, ``running`` from now; an existing run id is a :class:`RegistryError`.

        ``owner``: the process that runs it (see :meth:`reap`); ``None`` for a run that several
        processes carry in turn (Airflow's tasks), which only the heartbeat lease can declare dead.
        """
        _check(trigger, TRIGGERS, "trigger", run_id)
        _check(kind, KINDS, "kind", run_id)
        if inputs is None:
            raise RegistryError(f"run {run_id}: inputs are required (the files and their hashes), got None")
        with session_scope(self.engine) as session:
            self._refuse_existing(session, run_id)
            now = datetime.now(UTC)
            row = RunRow(
                run_id=run_id,
                trigger=trigger,
                started_at=now,
                status=RUNNING,
                inputs=inputs,
                durations={},
                details={},
                kind=kind,
                host=owner.host if owner else None,
                pid=owner.pid if owner else None,
                pid_started=owner.started if owner else None,
                heartbeat_at=now,
            )
            session.add(row)
            try:
                session.flush()
            except IntegrityError as exc:
                if "run_id" in str(exc.orig):  # a concurrent start of the same id committed first
                    raise RegistryError(f"run {run_id} was already started by another process") from exc
                raise RegistryError(
                    f"cannot start run {run_id}: {str(exc.orig).strip().splitlines()[0]}"
                ) from exc
            session.refresh(row)
            return RunRecord._from_row(row)

    def finish(
        self,
        run_id: str,
        *,
        status: str,
        error: str | None = None,
        champion_version: str | None = None,
        data_drift: bool | None = None,
        model_drift: bool | None = None,
        decision: str | None = None,
        challenger: dict[str, Any] | None = None,
        durations: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
    ) -> RunRecord:
        """Close a running run with its outcome; ``durations``/``details`` left ``None`` stay as they are."""
        _check(status, FINAL_STATUSES, "final status", run_id)
        _check(decision, DECISIONS, "decision", run_id)
        with session_scope(self.engine) as session:
            row = session.scalar(select(RunRow).where(RunRow.run_id == run_id).with_for_update())
            if row is None:
                raise RegistryError(f"run {run_id} cannot be finished: it was never started")
            if row.status != RUNNING:
                raise RegistryError(
                    f"run {run_id} cannot be finished as {status}: it finished already as {row.status} "
                    f"at {as_utc(row.finished_at).isoformat() if row.finished_at else 'an unknown time'}"
                )
            row.finished_at = datetime.now(UTC)
            row.status = status
            row.error = error
            # what an earlier step recorded (:meth:`record_found`) stays unless given again
            row.champion_version = champion_version if champion_version is not None else row.champion_version
            row.data_drift = data_drift if data_drift is not None else row.data_drift
            row.model_drift = model_drift if model_drift is not None else row.model_drift
            row.decision = decision if decision is not None else row.decision
            row.challenger = challenger if challenger is not None else row.challenger
            row.durations = row.durations if durations is None else durations
            row.details = row.details if details is None else details
            session.flush()
            session.refresh(row)  # what the store holds (non-finite numbers are null there)
            return RunRecord._from_row(row)

    def get(self, run_id: str) -> RunRecord:
        """The run ``run_id``; an unknown id is a :class:`RegistryError`."""
        with session_scope(self.engine) as session:
            row = session.scalar(select(RunRow).where(RunRow.run_id == run_id))
            if row is None:
                raise NotFoundError(f"unknown run {run_id!r}")
            return RunRecord._from_row(row)

    def list(self, limit: int = 50) -> builtins.list[RunRecord]:
        """The ``limit`` most recently started runs, newest first."""
        if limit < 1:
            raise RegistryError(f"runs list limit must be at least 1, got {limit}")
        query = select(RunRow).order_by(RunRow.started_at.desc(), RunRow.id.desc()).limit(limit)
        with session_scope(self.engine) as session:
            return [RunRecord._from_row(row) for row in session.scalars(query)]

    def latest_finished(self) -> RunRecord | None:
        """The monitoring run that finished last (any final status), or None."""
        query = (
            select(RunRow)
            .where(RunRow.finished_at.is_not(None), RunRow.kind == MONITOR)
            .order_by(RunRow.finished_at.desc(), RunRow.id.desc())
            .limit(1)
        )
        with session_scope(self.engine) as session:
            row = session.scalar(query)
            return RunRecord._from_row(row) if row is not None else None

    def latest_success_time(self) -> datetime | None:
        """When the last monitoring run that did not fail finished (any status but ``failed``: the
        monitoring worked, whatever the data), or None."""
        query = select(func.max(RunRow.finished_at)).where(
            RunRow.status.in_([s for s in FINAL_STATUSES if s != "failed"]), RunRow.kind == MONITOR
        )
        with session_scope(self.engine) as session:
            value = session.scalar(query)
            return as_utc(value) if value is not None else None

    def latest_with_check(self, scan: int = 200) -> RunRecord | None:
        """The newest finished run whose ``details`` hold a ``"check"``, among the last ``scan``."""
        query = (
            select(RunRow)
            .where(RunRow.finished_at.is_not(None))
            .order_by(RunRow.finished_at.desc(), RunRow.id.desc())
            .limit(scan)
        )
        with session_scope(self.engine) as session:
            for row in session.scalars(query):
                if isinstance(row.details, dict) and isinstance(row.details.get("check"), dict):
                    return RunRecord._from_row(row)
        return None

    def add_details(self, run_id: str, **values: Any) -> RunRecord:
        """Merge ``values`` into the run's ``details`` (e.g. how its metrics were published), any status."""
        with session_scope(self.engine) as session:
            row = session.scalar(select(RunRow).where(RunRow.run_id == run_id).with_for_update())
            if row is None:
                raise NotFoundError(f"unknown run {run_id!r}")
            row.details = {**(row.details or {}), **values}
            session.flush()
            session.refresh(row)
            return RunRecord._from_row(row)

    def record_found(
        self,
        run_id: str,
        *,
        champion_version: str | None,
        data_drift: bool | None,
        model_drift: bool | None,
        decision: str | None,
    ) -> RunRecord:
        """Record what a running run found (its drift check) before the steps that may fail after it, so a
        run that fails later still counts the drift it detected."""
        _check(decision, DECISIONS, "decision", run_id)
        with session_scope(self.engine) as session:
            row = session.scalar(select(RunRow).where(RunRow.run_id == run_id).with_for_update())
            if row is None:
                raise NotFoundError(f"unknown run {run_id!r}")
            if row.status == RUNNING:
                row.champion_version = champion_version
                row.data_drift = data_drift
                row.model_drift = model_drift
                row.decision = decision
                row.heartbeat_at = datetime.now(UTC)
            session.flush()
            session.refresh(row)
            return RunRecord._from_row(row)

    def heartbeat(self, run_id: str) -> None:
        """Renew the lease of a running run (a no-op once it finished)."""
        with session_scope(self.engine) as session:
            session.execute(
                update(RunRow)
                .where(RunRow.run_id == run_id, RunRow.status == RUNNING)
                .values(heartbeat_at=datetime.now(UTC))
            )

    def running(self) -> builtins.list[RunRecord]:
        """Every run still ``running``, oldest first."""
        query = select(RunRow).where(RunRow.status == RUNNING).order_by(RunRow.id)
        with session_scope(self.engine) as session:
            return [RunRecord._from_row(row) for row in session.scalars(query)]

    def reap(self, by: str, *, lease_seconds: float = LEASE_SECONDS) -> builtins.list[RunRecord]:
        """Finish as ``failed`` every running run whose owner is gone (module docstring); the reaped runs.

        ``by`` names the run (or command) that reaps, in the error it records.
        """
        now = datetime.now(UTC)
        reaped = []
        for run in self.running():
            why = _dead_owner(run, now, lease_seconds)
            if why is None:
                continue
            with session_scope(self.engine) as session:
                row = session.scalar(
                    select(RunRow)
                    .where(RunRow.run_id == run.run_id, RunRow.status == RUNNING)
                    .with_for_update()
                )
                if row is None:  # finished meanwhile
                    continue
                row.status = "failed"
                row.finished_at = now
                row.error = f"stopped: {why} (found by {by})"
                session.flush()
                session.refresh(row)
                reaped.append(RunRecord._from_row(row))
        return reaped

    def record_challenger(self, run_id: str, challenger: dict[str, Any]) -> bool:
        """Record the challenger a run's retraining produced elsewhere (the Airflow training DAG), once.

        ``False`` when the run already has one (a retried training task does not count twice).
        """
        with session_scope(self.engine) as session:
            row = session.scalar(select(RunRow).where(RunRow.run_id == run_id).with_for_update())
            if row is None:
                raise NotFoundError(f"unknown run {run_id!r}")
            if row.challenger is not None:
                return False
            row.challenger = challenger
            return True

    def totals(self) -> dict[str, int]:
        """Counts over every stored run (see :data:`TOTAL_KEYS`), in one transaction.

        Statuses, drift flags and retrains are counted by SQL; the challenger's ``outcome`` is read from
        its JSON in Python (JSON paths differ between SQLite and PostgreSQL), still from the table.
        """
        totals = dict.fromkeys(TOTAL_KEYS, 0)
        monitor = RunRow.kind == MONITOR
        with session_scope(self.engine) as session:
            query_statuses = select(RunRow.status, func.count()).where(monitor).group_by(RunRow.status)
            for status, count in session.execute(query_statuses):
                totals[status] = count
                totals["runs"] += count
            totals["data_drift"] = self._count(session, monitor & RunRow.data_drift.is_(True))
            totals["model_drift"] = self._count(session, monitor & RunRow.model_drift.is_(True))
            totals["retrains"] = self._count(session, monitor & (RunRow.decision == "retrain"))
            done = RunRow.status == "success"
            totals["rollbacks"] = self._count(session, (RunRow.kind == "rollback") & done)
            totals["manual_promotions"] = self._count(session, (RunRow.kind == "promote") & done)
            query = select(RunRow.challenger).where(RunRow.challenger.is_not(None), monitor)
            challengers: builtins.list[Any] = builtins.list(session.scalars(query))
            outcomes: Counter[Any] = Counter(c.get("outcome") for c in challengers if isinstance(c, dict))
        totals["promotions"] = outcomes["promoted"]
        totals["rejections"] = outcomes["rejected"]
        return totals

    @staticmethod
    def _count(session: Session, condition: Any) -> int:
        return int(session.scalar(select(func.count()).select_from(RunRow).where(condition)) or 0)

    @staticmethod
    def _refuse_existing(session: Session, run_id: str) -> None:
        """A clear error naming when and how the existing run started (a retried task reuses its id)."""
        row = session.scalar(select(RunRow).where(RunRow.run_id == run_id))
        if row is not None:
            raise RegistryError(
                f"run {run_id} was already started at {as_utc(row.started_at).isoformat()} "
                f"(trigger {row.trigger}, status {row.status}): a run id is started once"
            )


def _dead_owner(run: RunRecord, now: datetime, lease_seconds: float) -> str | None:
    """Why ``run``'s owner is gone, or ``None`` while it may be alive."""
    if run.pid is not None and run.host is not None:
        owner = ProcessIdentity(run.host, run.pid, run.pid_started)
        alive = owner.alive()
        if alive is False:
            return f"its process (pid {run.pid} on host {run.host}) is gone"
        if alive is True:
            return None
    beat = run.heartbeat_at or run.started_at
    silent = (now - beat).total_seconds()
    if silent > lease_seconds:
        return f"no heartbeat for {silent:.0f} s (lease {lease_seconds:.0f} s)"
    return None
