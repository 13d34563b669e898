"""Checking and repairing the transaction history: ``clvdrift history verify`` and ``history drop``.

A part file that is missing or corrupted (a disk error, a bad restore, a ``truncate``) stops every cycle
with a store error naming the part and its batch. :func:`verify_history` lists every such part;
:func:`drop_batch` removes the batch (its part moves to ``<history>/dropped/``) and forgets its source
file in the ledger, so putting that file back into ``current_dir`` takes it in again. A drop is
recorded in the run history (kind ``repair``) and runs under the cycle lock, never during a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clvdrift.data.history import HistoryBatch, PartProblem, TransactionHistory, current_batches
from clvdrift.jsonable import dataclass_dict
from clvdrift.pipeline.common import Workspace, new_id
from clvdrift.pipeline.cycle import CycleContext, cycle_lock, publish_metrics


@dataclass(frozen=True)
class HistoryReport:
    """Every batch of the history and the problems of their parts."""

    batches: list[dict[str, Any]]
    problems: list[PartProblem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**dataclass_dict(self), "ok": self.ok}


@dataclass(frozen=True)
class DropResult:
    """What ``history drop`` removed, and the run that records it."""

    run_id: str
    batch: dict[str, Any]
    ledger_forgotten: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def _describe(batch: HistoryBatch, current: set[str], problems: dict[str, str]) -> dict[str, Any]:
    return {
        "batch_id": batch.batch_id,
        "mode": batch.mode,
        "source": batch.source,
        "rows_added": batch.rows_added,
        "created_at": batch.created_at.isoformat(timespec="seconds"),
        "current": batch.batch_id in current,
        "part_file": batch.part_file,
        "problem": problems.get(batch.batch_id),
    }


def verify_history(workspace: Workspace) -> HistoryReport:
    """Check every part of the history (present, its sha256, readable, its row count)."""
    ctx = CycleContext.open(workspace)
    history = TransactionHistory(workspace.history_dir, ctx.engine)
    batches = history.batches()
    problems = history.verify()
    current = {b.batch_id for b in current_batches(batches)}
    by_batch = {p.batch_id: p.problem for p in problems}
    return HistoryReport([_describe(b, current, by_batch) for b in batches], problems)


def drop_batch(workspace: Workspace, batch_id: str, *, trigger: str = "cli") -> DropResult:
    """Remove the batch ``batch_id`` (module docstring), recorded as a ``repair`` run."""
    from clvdrift.store.ledger import Ledger
    from clvdrift.store.runs import RunStore

    ctx = CycleContext.open(workspace)
    runs = RunStore(ctx.engine)
    history = TransactionHistory(workspace.history_dir, ctx.engine)
    with cycle_lock(ctx, doing="dropped"):
        run_id = new_id("repair")
        runs.start(run_id, trigger, {"action": "drop_batch", "batch_id": batch_id}, kind="repair")
        try:
            batch = history.drop(batch_id)
        except BaseException as exc:
            runs.finish(run_id, status="failed", error=str(exc) or type(exc).__name__, decision="drop_batch")
            raise
        forgotten = Ledger(ctx.engine).forget(batch.sha256)
        described = _describe(batch, set(), {})
        runs.finish(
            run_id,
            status="success",
            decision="drop_batch",
            details={"batch": described, "ledger_forgotten": forgotten},
        )
    publish_metrics(ctx, run_id)
    return DropResult(run_id, described, forgotten)
