"""Alembic environment of the store (run by :func:`clvdrift.store.connect`, no ``alembic.ini``).

Revisions live in ``versions/`` as ``NNNN_<slug>.py`` with revision id ``"NNNN"`` and a linear history,
so the head is the largest prefix: :data:`HEAD` is read from the file names without importing Alembic
(about 80 ms), which keeps ``connect`` on an up-to-date store fast.
"""

from __future__ import annotations

from pathlib import Path

LOCATION = Path(__file__).resolve().parent
BASELINE = "0001"
"""The schema the pre-Alembic code created with ``create_all``; such stores are stamped at it."""


def _head() -> str:
    return max(p.name[:4] for p in (LOCATION / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


HEAD = _head()
