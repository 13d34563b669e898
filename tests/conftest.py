"""Shared fixtures: hand-made transactions, a bundled-data path, store URLs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "data" / "online_retail.csv.gz"
# The real PostgreSQL of this machine; CI must fail (not skip) when it cannot be reached.
POSTGRES_URL = os.environ.get("CLVDRIFT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

@pytest.fixture
def bundled() -> Path:
    assert BUNDLED.is_file(), f"bundled data missing at {BUNDLED}"
    return BUNDLED
