"""Fixtures of the service tests: a workspace with a champion and a seeded transaction history, an API
key, and the app in a TestClient (the real app, store and files; only the HTTP socket is in-process)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clvdrift.config import GbmParams, ServiceConfig, TrainConfig
from clvdrift.pipeline.common import Workspace
from helpers import synthetic_history  # type: ignore[import-not-found]

SMALL = TrainConfig(gbm=GbmParams(max_iter=50))


@dataclass(frozen=True)
class Served:
    workspace: Workspace
    key: str
    version: str


def seed_workspace(root: Path, *, customers: int = 240) -> tuple[Workspace, str]:
    """A workspace under ``root``: a synthetic history file, a champion trained on it (small model), the
    history seeded with the file (one batch); returns it and the champion's version."""
    from clvdrift import pipeline
    from clvdrift.data import load_transactions
    from clvdrift.data.history import TransactionHistory
    from clvdrift.io import sha256_file
    from clvdrift.pipeline.champion import open_registry
    from clvdrift.store import connect

    data = root / "history.csv"
    synthetic_history(data, customers=customers)
    ws = Workspace.under(root, raw_data=data)
    result = pipeline.train(
        data,
        registry=open_registry(ws.database_url),
        models_dir=ws.models_dir,
        reference_dir=ws.reference_dir,
        config=SMALL,
    )
    TransactionHistory(ws.history_dir, connect(ws.database_url)).add(
        load_transactions(data), source=str(data), sha256=sha256_file(data), mode="append"
    )
    return ws, result.version


@pytest.fixture(scope="session")
def served_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """One seeded workspace and API key for the session; each test copies it."""
    from clvdrift.store import connect
    from clvdrift.store.apikeys import ApiKeys

    root = tmp_path_factory.mktemp("served")
    ws, version = seed_workspace(root)
    _, key = ApiKeys(connect(ws.database_url)).create("tests")
    return root, key, version


@pytest.fixture
def served(served_template: tuple[Path, str, str], tmp_path: Path) -> Served:
    """A private copy of the seeded workspace."""
    template, key, version = served_template
    root = tmp_path / "ws"
    shutil.copytree(template, root)
    return Served(Workspace.under(root, raw_data=root / "history.csv"), key, version)


def client_for(ws: Workspace, config: ServiceConfig = ServiceConfig()):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from clvdrift.service.app import create_app

    return TestClient(create_app(ws, config), raise_server_exceptions=False)


@pytest.fixture
def client(served: Served) -> Iterator:  # type: ignore[type-arg]
    with client_for(served.workspace, ServiceConfig(champion_poll_seconds=0.2)) as c:
        c.headers["X-API-Key"] = served.key
        yield c
