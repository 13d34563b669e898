"""Fixtures of the fault-injection suite: a trained workspace template per store kind, copied per case.

The SQLite template (trained champion, models/, data/reference/, the store file and the input files of
the cases) is made once per session; a case copies the folder. The PostgreSQL template is a database
made once (``clvdrift train`` into it) and copied per case with ``CREATE DATABASE … TEMPLATE``, its
folder copied as the SQLite one.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from conftest import POSTGRES_URL  # type: ignore[import-not-found]
from faults.harness import FaultWorkspace
from helpers import synthetic_history  # type: ignore[import-not-found]

DRIFT_SEED = 3


def _make_template(root: Path, database_url: str) -> None:
    """history.csv, a champion trained on it, and inputs/drift.csv (the data-drift scenario)."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "history.csv").exists():
        synthetic_history(root / "history.csv")
    ws = FaultWorkspace(root, database_url)
    ws.run("train")
    (root / "inputs").mkdir(exist_ok=True)
    ws.run("simulate", "--scenario", "data-drift", "--seed", str(DRIFT_SEED))
    shutil.move(ws.current_dir / "current_data.csv", root / "inputs" / "drift.csv")
    ws.dispose()
    shutil.rmtree(root / ".out")
    shutil.rmtree(root / ".kept")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faults") / "template-sqlite"
    _make_template(root, f"sqlite:///{root / 'clvdrift.db'}")
    return root


def _admin() -> sa.Engine:
    return sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")


def _url(database: str) -> str:
    return make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_template(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[tuple[Path, str]]:
    """(folder, database name) of a PostgreSQL workspace with a trained champion."""
    name = f"clvdrift_faults_tpl_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        root = tmp_path_factory.mktemp("faults") / "template-pg"
        root.mkdir()
        shutil.copyfile(sqlite_template / "history.csv", root / "history.csv")
        _make_template(root, _url(name))
        yield root, name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _copy_database(template: str) -> str:
    name = f"clvdrift_faults_{uuid.uuid4().hex[:12]}"
    admin = _admin()
    try:
        for attempt in range(50):  # the template's last session may still be closing
            try:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
                return name
            except sa.exc.OperationalError as exc:
                if "being accessed by other users" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.1)
    finally:
        admin.dispose()
    raise AssertionError("unreachable")


def _drop_database(name: str) -> None:
    admin = _admin()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


NewWorkspace = Callable[..., FaultWorkspace]


@pytest.fixture
def new_ws(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[NewWorkspace]:
    """``new_ws(store="sqlite"|"postgresql", mode="snapshot"|"append")``: a trained workspace of its own."""
    made: list[tuple[FaultWorkspace, str | None]] = []

    def make(store: str = "sqlite", mode: str = "snapshot") -> FaultWorkspace:
        root = tmp_path / f"ws{len(made)}"
        if store == "sqlite":
            shutil.copytree(sqlite_template, root, symlinks=True)
            ws = FaultWorkspace(root, f"sqlite:///{root / 'clvdrift.db'}", mode=mode)
            made.append((ws, None))
            return ws
        assert store == "postgresql", store
        folder, template = request.getfixturevalue("pg_template")
        database = _copy_database(template)
        shutil.copytree(folder, root, symlinks=True)
        ws = FaultWorkspace(root, _url(database), mode=mode)
        made.append((ws, database))
        return ws

    yield make
    for ws, database in made:
        ws.dispose()
        if database is not None:
            _drop_database(database)
