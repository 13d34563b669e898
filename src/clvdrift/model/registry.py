"""Model registry in the store: every version with its metrics, and which one is the champion.

The registry row is the source of truth for "which version is champion": a partial unique index
(``store/tables.py``) lets the database hold one champion at most, and every change of champion —
demote the old one, crown the new one — is one transaction. Registry writes take turns: each
transaction first takes the store's champion lock (a transaction-scoped advisory lock on PostgreSQL,
the database write lock on SQLite), so what it reads (the champion, the promotion history) is still
true when it commits. Concurrent changes that collide anyway (a deadlock or a busy SQLite file) are
retried a few times; the files ``*_latest`` and ``reference_data.csv`` follow the registry
(:func:`clvdrift.model.artifacts.publish_champion`).

Promotion history: ``promoted_at`` is when a version last became champion (``NULL``: never);
``rolled_back_at`` is when a rollback took it off (cleared when it becomes champion again). A
rollback (:meth:`ModelRegistry.rollback`) walks that history back: the most recently promoted
version that is neither the champion nor rolled back, so A → B → C then three rollbacks give B, A,
then "nothing to roll back to", never a toggle between the last two.
Metrics and the other JSON fields are stored with non-finite floats as ``null``
(the column type ``SafeJSON`` in ``store/tables.py``, via :func:`clvdrift.jsonable.plain`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from clvdrift.errors import ConflictError, NoChampionError, NotFoundError, RegistryError
from clvdrift.store.db import is_transient, session_scope
from clvdrift.store.locks import lock_key
from clvdrift.store.tables import CHAMPION_INDEX, ModelVersionRow

T = TypeVar("T")

ATTEMPTS = 8
"""How many times a champion change that collides with a concurrent one is tried."""
BACKOFF_SECONDS = 0.02
"""Base of the jittered exponential pause between attempts."""
CHAMPION_LOCK = lock_key("champion")
"""The PostgreSQL advisory lock key every registry write holds for its transaction."""


@dataclass(frozen=True)
class ModelVersion:
    version: str
    created_at: datetime
    target: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    training: dict[str, Any]
    data_fingerprint: dict[str, Any]
    artifacts: dict[str, Any]
    is_champion: bool
    promoted_at: datetime | None
    run_id: str | None = None
    """The monitoring or Airflow run that registered this version; ``None`` for a plain training."""
    rolled_back_at: datetime | None = None
    """When a rollback took this version off as champion; ``None`` when it never was, or became
    champion again since."""

    @classmethod
    def _from_row(cls, row: ModelVersionRow) -> ModelVersion:
        return cls(**{f: getattr(row, f) for f in cls.__dataclass_fields__})

    @property
    def family(self) -> str:
        """The model family (``rf`` for versions registered before families existed)."""
        from clvdrift.model.base import TrainingRecord

        return TrainingRecord.from_dict(self.training).family

    def summary(self) -> dict[str, Any]:
        """The version in a line of a list (the service's ``GET /models`` and its dashboard): no
        training record, parameters or artifacts, the held-out and baseline metrics."""
        return {
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "family": self.family,
            "target": self.target,
            "is_champion": self.is_champion,
            "promoted_at": self.promoted_at.isoformat() if self.promoted_at else None,
            "rolled_back_at": self.rolled_back_at.isoformat() if self.rolled_back_at else None,
            "run_id": self.run_id,
            "cutoff": self.training.get("cutoff"),
            "metrics": self.metrics.get("model", {}),
            "baseline": self.metrics.get("baseline", {}),
        }

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["family"] = self.family
        out["created_at"] = self.created_at.isoformat()
        out["promoted_at"] = self.promoted_at.isoformat() if self.promoted_at else None
        out["rolled_back_at"] = self.rolled_back_at.isoformat() if self.rolled_back_at else None
        return out


@dataclass(frozen=True)
class ChampionSwap:
    """One change of champion as its transaction made it (or, from :meth:`ModelRegistry.plan_rollback`,
    would make it now)."""

    previous: ModelVersion | None
    """The champion before the change (``None``: there was none)."""
    champion: ModelVersion
    """The champion after it."""

    @property
    def changed(self) -> bool:
        return self.previous is None or self.previous.version != self.champion.version


def _champion_conflict(exc: IntegrityError) -> bool:
    """Whether ``exc`` is the one-champion index refusing a second champion (a concurrent change won)."""
    message = str(exc.orig)
    return CHAMPION_INDEX in message or "model_versions.is_champion" in message


def _version_conflict(exc: IntegrityError) -> bool:
    """Whether ``exc`` is the unique version refusing a version a concurrent process just registered."""
    message = str(exc.orig)
    return "model_versions_version_key" in message or "model_versions.version" in message


class ModelRegistry:
    """Reads and writes model versions; every change is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def register(
        self,
        version: str,
        *,
        target: str,
        metrics: dict[str, Any],
        params: dict[str, Any],
        training: dict[str, Any],
        data_fingerprint: dict[str, Any],
        artifacts: dict[str, Any],
        champion: bool | None = None,
        run_id: str | None = None,
    ) -> ModelVersion:
        """Record a new version. ``champion=None`` makes it champion only when there is none yet.

        ``run_id`` names the run that registered it; the database refuses a second version of one run.

        ``champion=True`` demotes the current champion in the same transaction. Under concurrency the
        database decides: with ``None``, the version that commits first is champion and the others are
        registered as challengers.
        """

        def work(session: Session) -> ModelVersion:
            if session.scalar(select(ModelVersionRow.id).where(ModelVersionRow.version == version)):
                raise ConflictError(f"model version {version} is already registered")
            if run_id is not None and (
                done := session.scalar(
                    select(ModelVersionRow.version).where(ModelVersionRow.run_id == run_id)
                )
            ):
                raise ConflictError(f"run {run_id} already registered model version {done}")
            if champion is None:
                crown = session.scalar(select(ModelVersionRow.id).where(ModelVersionRow.is_champion)) is None
            else:
                crown = champion
            now = datetime.now(UTC)
            if champion:
                self._demote_others(session, version)
            row = ModelVersionRow(
                version=version,
                created_at=now,
                target=target,
                metrics=metrics,
                params=params,
                training=training,
                data_fingerprint=data_fingerprint,
                artifacts=artifacts,
                is_champion=crown,
                promoted_at=now if crown else None,
                run_id=run_id,
            )
            session.add(row)
            session.flush()
            session.refresh(row)  # what the store holds (non-finite metrics are null there)
            return ModelVersion._from_row(row)

        return self._write(work, f"register model version {version}")

    def promote(self, version: str) -> ModelVersion:
        """Make ``version`` the champion (and no other); a no-op when it already is."""
        return self.swap_champion(version).champion

    def swap_champion(self, version: str, *, expected_champion: str | None | bool = False) -> ChampionSwap:
        """Make ``version`` the champion, in one transaction; the champion it replaced with it.

        A no-op (``changed`` false) when it is the champion already. Becoming champion clears the
        version's ``rolled_back_at``: a version promoted again after a rollback is in the history again.
        ``expected_champion`` (a version, or ``None`` for "no champion"; ``False``: not checked): the
        champion must still be that one, else :class:`ConflictError` and nothing changes (a promotion
        decided against one champion never replaces another).
        """

        def work(session: Session) -> ChampionSwap:
            row = session.scalar(select(ModelVersionRow).where(ModelVersionRow.version == version))
            if row is None:
                raise NotFoundError(f"unknown model version {version!r}")
            previous = session.scalar(select(ModelVersionRow).where(ModelVersionRow.is_champion))
            before = ModelVersion._from_row(previous) if previous is not None else None
            now = before.version if before is not None else None
            if expected_champion is not False and now != expected_champion:
                raise ConflictError(
                    f"the champion changed meanwhile: it is {now or 'none'}, not "
                    f"{expected_champion or 'none'}; model version {version} was not promoted"
                )
            if not row.is_champion:
                self._crown(session, row)
            return ChampionSwap(before, ModelVersion._from_row(row))

        return self._write(work, f"promote model version {version}")

    def plan_rollback(self, to: str | None = None) -> ChampionSwap:
        """What :meth:`rollback` with the same ``to`` would do now, without doing it; the same
        :class:`RegistryError` when there is nothing to roll back to."""
        with session_scope(self.engine) as session:
            champion, target = _rollback_rows(session, to)
            return ChampionSwap(ModelVersion._from_row(champion), ModelVersion._from_row(target))

    def rollback(self, to: str | None = None, *, expected_champion: str | None = None) -> ChampionSwap:
        """Take the champion off (``rolled_back_at`` set) and restore an earlier one, in one transaction.

        ``to=None``: the version that was champion before, walking back the promotion history (module
        docstring) and skipping versions rolled back already. ``to``: that version, which must have
        been champion before (``promoted_at`` set) and not be the champion now. ``expected_champion``:
        the champion the caller planned from (:meth:`plan_rollback`); when another change took it off
        meanwhile (two rollbacks at once) nothing changes and a :class:`RegistryError` says so, so two
        rollbacks never both roll back from the same champion.
        """

        def work(session: Session) -> ChampionSwap:
            champion, target = _rollback_rows(session, to)
            if expected_champion is not None and champion.version != expected_champion:
                raise ConflictError(
                    f"model version {expected_champion} is no longer the champion ({champion.version} is: "
                    "another champion change committed meanwhile); nothing was rolled back — check "
                    "`clvdrift models list` and run the rollback again if it is still wanted"
                )
            before = ModelVersion._from_row(champion)
            champion.rolled_back_at = datetime.now(UTC)
            self._crown(session, target)
            session.refresh(champion)
            return ChampionSwap(before, ModelVersion._from_row(target))

        return self._write(work, f"roll back to model version {to}" if to else "roll back the champion")

    def get(self, version: str) -> ModelVersion:
        with session_scope(self.engine) as session:
            row = session.scalar(select(ModelVersionRow).where(ModelVersionRow.version == version))
            if row is None:
                raise NotFoundError(f"unknown model version {version!r}")
            return ModelVersion._from_row(row)

    def previous_champion(self) -> ModelVersion | None:
        """The version a rollback would restore now (:meth:`plan_rollback`), or ``None`` when there is
        nothing to roll back to."""
        try:
            return self.plan_rollback().champion
        except RegistryError:
            return None

    def of_run(self, run_id: str) -> ModelVersion | None:
        """The version the run ``run_id`` registered, if any."""
        with session_scope(self.engine) as session:
            row = session.scalar(select(ModelVersionRow).where(ModelVersionRow.run_id == run_id))
            return ModelVersion._from_row(row) if row else None

    def champion(self) -> ModelVersion | None:
        with session_scope(self.engine) as session:
            row = session.scalar(select(ModelVersionRow).where(ModelVersionRow.is_champion))
            return ModelVersion._from_row(row) if row else None

    def list_versions(self) -> list[ModelVersion]:
        """All versions, newest first."""
        with session_scope(self.engine) as session:
            rows = session.scalars(select(ModelVersionRow).order_by(ModelVersionRow.id.desc())).all()
            return [ModelVersion._from_row(r) for r in rows]

    def _crown(self, session: Session, row: ModelVersionRow) -> None:
        """Make ``row`` the champion: the others demoted first, promoted now, no longer rolled back."""
        self._demote_others(session, row.version)
        session.flush()  # the old champion off before the new one is on (the one-champion index)
        row.is_champion = True
        row.promoted_at = datetime.now(UTC)
        row.rolled_back_at = None
        session.flush()
        session.refresh(row)

    @staticmethod
    def _demote_others(session: Session, version: str) -> None:
        session.execute(
            update(ModelVersionRow)
            .where(ModelVersionRow.is_champion, ModelVersionRow.version != version)
            .values(is_champion=False)
        )

    def _write(self, work: Callable[[Session], T], what: str) -> T:
        """Run ``work`` in one transaction under the champion lock, retried when a concurrent champion
        change collides with it anyway; ``what`` names the change in errors."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with Session(self.engine, expire_on_commit=False) as session, session.begin():
                    _lock_champion(session)
                    return work(session)
            except IntegrityError as exc:
                if _version_conflict(exc):
                    raise ConflictError(f"cannot {what}: it is already registered") from exc
                if not _champion_conflict(exc):
                    raise RegistryError(f"cannot {what}: {str(exc.orig).strip().splitlines()[0]}") from exc
                error: SQLAlchemyError = exc
            except SQLAlchemyError as exc:
                if not is_transient(exc):
                    raise RegistryError(f"cannot {what}: {str(exc).strip().splitlines()[0]}") from exc
                error = exc
            time.sleep(random.uniform(0, BACKOFF_SECONDS * 2**attempt))  # jitter, not security
        raise RegistryError(
            f"cannot {what}: concurrent champion changes kept colliding after {ATTEMPTS} attempts "
            f"({str(error).strip().splitlines()[0]}); try again"
        )


def _lock_champion(session: Session) -> None:
    """Take the store's champion lock for this transaction, before it reads anything: registry writes
    take turns, so a champion read here is the champion when the transaction commits.

    PostgreSQL: a transaction-scoped advisory lock (released at commit or rollback). SQLite: a write
    that changes nothing takes the database's write lock at once (Python's sqlite3 starts the
    transaction only at the first write, so reads before it would see a state another writer can change).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAMPION_LOCK})
    else:
        session.execute(text("UPDATE model_versions SET id = id WHERE 1 = 0"))


def _rollback_rows(session: Session, to: str | None) -> tuple[ModelVersionRow, ModelVersionRow]:
    """The champion and the version a rollback restores (see :meth:`ModelRegistry.rollback`)."""
    champion = session.scalar(select(ModelVersionRow).where(ModelVersionRow.is_champion))
    if champion is None:
        raise NoChampionError("no champion model registered: nothing to roll back")
    if to is not None:
        target = session.scalar(select(ModelVersionRow).where(ModelVersionRow.version == to))
        if target is None:
            raise NotFoundError(f"unknown model version {to!r}")
        if target.is_champion:
            raise ConflictError(f"model version {to} is the champion already: nothing to roll back")
        if target.promoted_at is None:
            raise ConflictError(
                f"cannot roll back to model version {to}: it was never champion "
                f"(to make it champion: clvdrift models promote {to})"
            )
        return champion, target
    target = session.scalar(
        select(ModelVersionRow)
        .where(
            ~ModelVersionRow.is_champion,
            ModelVersionRow.promoted_at.is_not(None),
            ModelVersionRow.rolled_back_at.is_(None),
        )
        .order_by(ModelVersionRow.promoted_at.desc(), ModelVersionRow.id.desc())
        .limit(1)
    )
    if target is None:
        skipped = session.scalar(
            select(func.count())
            .select_from(ModelVersionRow)
            .where(~ModelVersionRow.is_champion, ModelVersionRow.rolled_back_at.is_not(None))
        )
        if not skipped:
            raise ConflictError(f"nothing to roll back to: no version was champion before {champion.version}")
        raise ConflictError(
            f"nothing to roll back to: the {skipped} version(s) champion before {champion.version} were "
            "rolled back already (`clvdrift models rollback --to VERSION` brings one back)"
        )
    return champion, target
