"""Store fixtures: a fresh store URL on SQLite (a new file) and on the real PostgreSQL (a new database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from store.pgdb import fresh_database  # type: ignore[import-not-found]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty store that no other test uses."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with fresh_database() as url:
        yield url
