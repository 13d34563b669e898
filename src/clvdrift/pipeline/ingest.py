"""Ingestion of transaction rows sent over HTTP (``POST /ingest/batch`` and ``/ingest/stream``).

:func:`ingest_records` validates each record (:mod:`clvdrift.data.records`: a bad record is rejected
with its reason, the others kept), appends the kept rows to the transaction history the monitoring cycle
reads — in ``append`` mode, so a row the history holds already is not added again — and records the
batch in the ledger as processed and not yet checked, so the next monitoring cycle checks it, exactly as
it checks a file taken in from ``current_dir``.

Durability: the history's part file is fsynced and renamed, then its batch row and the ledger entry are
committed (SQLite in WAL mode with ``synchronous=FULL``, or PostgreSQL), all before the function returns:
an acknowledged row survives a kill of the server. A kill before that leaves nothing or an orphan part
the history ignores; the client, unanswered, sends again.

Idempotency: a request sent with an ``Idempotency-Key`` is recorded with its response. A retry with the
same key and the same rows gets that response again (``replayed``: true) and stores nothing; the same key
with other rows is a :class:`ConflictError` (409) and stores nothing. Without a key a resent request still
adds no row twice (append mode), but its response counts the rows as duplicates. A request whose server
was killed after writing the history but before answering is recognised by the retry (the history holds a
batch of the same content): its batch is reported and gets its ledger entry then.

Requests take turns on the store's ``ingest`` lock (PostgreSQL advisory lock, a lock file on SQLite), so
checking a key, adding the rows and recording the answer happen as one step, also across servers. They
do not take the cycle lock: a cycle marks checked only the ledger entries it collected when it started, so
a batch ingested during a cycle stays unchecked and the next cycle checks it
(``tests/service/test_durability.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clvdrift.data.records import TransactionRecord
from clvdrift.errors import ConflictError
from clvdrift.faults import fault_point
from clvdrift.jsonable import dataclass_dict
from clvdrift.pipeline.common import Workspace, new_id

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["IngestResult", "TransactionRecord", "ingest_records", "ingest_stats"]

INGEST_LOCK_WAIT_SECONDS = 60.0
"""How long a request waits for the others before it is refused as busy (409)."""


@dataclass(frozen=True)
class IngestResult:
    """The answer to one ingestion request."""

    request_id: str
    accepted: int
    rejected: int
    rows_added: int
    duplicates: int
    batch_id: str | None
    rejects: list[dict[str, Any]]
    """``{"index": i, "reason": …}`` per rejected record."""
    idempotency_key: str | None
    replayed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def _digest(records: Sequence[Any]) -> str:
    text = json.dumps(list(records), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _reason_kinds(reasons: Sequence[str]) -> dict[str, int]:
    """Rejected rows counted by kind of reason (numbers in a reason, e.g. a line number, made ``N``)."""
    counts: Counter[str] = Counter()
    for reason in reasons:
        counts.update(re.sub(r"\d+", "N", part) for part in reason.split("; "))
    return dict(counts)


def ingest_records(
    workspace: Workspace,
    records: Sequence[Any],
    *,
    idempotency_key: str | None = None,
    engine: Engine | None = None,
) -> IngestResult:
    """Validate ``records`` and append the valid ones to the history (module docstring). ``engine``: the
    store's, when the caller holds one (a server), else one is opened."""
    from clvdrift.store import connect
    from clvdrift.store.locks import training_lock

    engine = engine if engine is not None else connect(workspace.database_url)
    with training_lock(
        engine,
        name="ingest",
        wait_seconds=INGEST_LOCK_WAIT_SECONDS,
        busy="ingestion is busy",
        hint="try again",
    ):
        return _ingest_locked(workspace, engine, records, idempotency_key)


def _ingest_locked(
    workspace: Workspace, engine: Engine, records: Sequence[Any], idempotency_key: str | None
) -> IngestResult:
    from clvdrift.data.history import TransactionHistory
    from clvdrift.data.records import records_to_frame
    from clvdrift.store import Ledger
    from clvdrift.store.online import IngestLog, IngestRecord, now

    log = IngestLog(engine)
    digest = _digest(records)
    if idempotency_key is not None:
        earlier = log.by_key(idempotency_key)
        if earlier is not None:
            return _replay(earlier, digest, idempotency_key)
    request_id = new_id("ingest")
    checked = records_to_frame(records)
    batch = None
    if len(checked.frame):
        history = TransactionHistory(workspace.history_dir, engine)
        ledger = Ledger(engine)
        # a request of the same rows killed after writing the history and before recording it in the
        # ledger: its batch is this request's (a request that finished has its ledger entry)
        batch = None
        if ledger.get(digest) is None:
            batch = next((b for b in history.batches() if b.sha256 == digest), None)
        if batch is None:
            source = f"api:{idempotency_key or request_id}"
            batch = history.add(checked.frame, source=source, sha256=digest, mode="append")
            fault_point("ingest.history_added")
        if batch is not None and ledger.get(digest) is None:
            ledger.record(digest, f"api/{batch.batch_id}", "processed", run_id=request_id)
    added = batch.rows_added if batch is not None else 0
    result = IngestResult(
        request_id=request_id,
        accepted=len(checked.frame),
        rejected=len(checked.rejected),
        rows_added=added,
        duplicates=len(checked.frame) - added,
        batch_id=batch.batch_id if batch is not None else None,
        rejects=[r.to_dict() for r in checked.rejected],
        idempotency_key=idempotency_key,
    )
    log.record(
        IngestRecord(
            request_id=request_id,
            idempotency_key=idempotency_key,
            request_sha256=digest,
            created_at=now(),
            accepted=result.accepted,
            rejected=result.rejected,
            rows_added=added,
            batch_id=result.batch_id,
            reasons=_reason_kinds([r.reason for r in checked.rejected]),
            response=result.to_dict(),
        )
    )
    fault_point("ingest.recorded")
    return result


def _replay(earlier: Any, digest: str, key: str | None) -> IngestResult:
    if earlier.request_sha256 != digest:
        raise ConflictError(
            f"Idempotency-Key {key!r} was used by request {earlier.request_id} with other rows; "
            "use a new key for new rows"
        )
    return IngestResult(**{**earlier.response, "replayed": True})


def ingest_stats(workspace: Workspace, engine: Engine | None = None) -> dict[str, Any]:
    """What ingestion brought (requests, rows accepted, rejected by reason, added, the newest request)
    and the history: its batches, rows, customers and last batch."""
    from clvdrift.data.history import TransactionHistory, current_batches
    from clvdrift.store import connect
    from clvdrift.store.online import IngestLog

    engine = engine if engine is not None else connect(workspace.database_url)
    history = TransactionHistory(workspace.history_dir, engine)
    batches = current_batches(history.batches())
    customers = history.customers() if batches else 0
    last = batches[-1] if batches else None
    return {
        "history": {
            "batches": len(batches),
            "rows": sum(b.rows_added for b in batches),
            "customers": customers,
            "last_batch": dataclass_dict(last) if last is not None else None,
        },
        "ingestion": IngestLog(engine).stats(),
    }
