"""The one store (SQLAlchemy 2): model registry now; run history and ledgers as they arrive."""

from clvdrift.store.db import connect, session_scope

__all__ = ["connect", "session_scope"]
