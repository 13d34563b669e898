"""The one store (SQLAlchemy 2): model registry, history batches, the file ledger, run history, locks."""

from clvdrift.store.db import connect, session_scope
from clvdrift.store.ledger import FileRecord, Ledger
from clvdrift.store.locks import training_lock
from clvdrift.store.runs import RunRecord, RunStore

__all__ = ["FileRecord", "Ledger", "RunRecord", "RunStore", "connect", "session_scope", "training_lock"]
