"""Fresh PostgreSQL databases for store tests, on the server of ``conftest.POSTGRES_URL``.

Other engineers run their tests against the database ``test`` at the same time: store tests never
touch its tables; each gets a database of its own (``clvdrift_test_<random>``), dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from conftest import POSTGRES_URL  # type: ignore[import-not-found]


@contextmanager
def fresh_database() -> Iterator[str]:
    """URL of a new, empty database; raises (the test fails) when PostgreSQL is unreachable."""
    name = f"clvdrift_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
