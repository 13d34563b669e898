"""Shared fixtures: hand-made transactions, a bundled-data path, store URLs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from clvdrift.settings import SAMPLE_DATA
from helpers import synthetic_history  # type: ignore[import-not-found]

os.environ.setdefault("DO_NOT_TRACK", "1")

REPO = Path(__file__).resolve().parents[1]
BUNDLED = SAMPLE_DATA
# The real PostgreSQL of this machine; CI must fail (not skip) when it cannot be reached.
POSTGRES_URL = os.environ.get(
    "CLVDRIFT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def bundled() -> Path:
    assert BUNDLED.is_file(), f"bundled data missing at {BUNDLED}"
    return BUNDLED


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One model trained on the bundled file (holdout target, cutoff 2011-09-09, H = 91) for the session."""
    from clvdrift import pipeline
    from clvdrift.config import TrainConfig
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.store import connect

    root = tmp_path_factory.mktemp("train")
    registry = ModelRegistry(connect(f"sqlite:///{root / 'store.db'}"))
    result = pipeline.train(
        BUNDLED,
        registry=registry,
        models_dir=root / "models",
        reference_dir=root / "reference",
        config=TrainConfig(horizon_days=91),
        cutoff="2011-09-09",
    )
    return root, registry, result


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty store that no other test uses: a new SQLite file, or a new database on the real
    PostgreSQL."""
    from store.pgdb import fresh_database  # type: ignore[import-not-found]  (it reads POSTGRES_URL here)

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with fresh_database() as url:
        yield url


@pytest.fixture
def cli_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder as a user's: a small synthetic transactions file as CLVDRIFT_RAW_DATA,
    no other CLVDRIFT_* variable but a smaller boosted model, every relative path (store, models, data)
    inside it."""
    data = tmp_path / "history.csv"
    synthetic_history(data)
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("CLVDRIFT_") and not v.startswith("CLVDRIFT_TEST_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("CLVDRIFT_RAW_DATA", str(data))
    # a smaller boosted model (50 trees, not 200) trains ~4x faster; what runs here is the command line and
    # the loop around the model, whose quality the model tests check with the defaults
    monkeypatch.setenv("CLVDRIFT_TRAIN__GBM__MAX_ITER", "50")
    return tmp_path
