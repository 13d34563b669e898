"""Schema through Alembic: concurrent first connects, pre-Alembic stores, the fast path at head."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from clvdrift.errors import RegistryError
from clvdrift.model.registry import ModelRegistry
from clvdrift.store import connect
from clvdrift.store.migrations import HEAD, LOCATION
from clvdrift.store.tables import CHAMPION_INDEX, Base
from store.processes import run_at_once, run_python  # type: ignore[import-not-found]


def _connect_once(_index: int, url: str) -> str:
    engine = connect(url)
    engine.dispose()
    return "connected"


def _versions(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def test_eight_concurrent_first_connects_on_a_fresh_store(store_url):
    results = run_at_once(_connect_once, 8, store_url)
    assert results == [("ok", "connected")] * 8
    assert _versions(store_url) == [HEAD]
    engine = sa.create_engine(store_url)
    indexes = {ix["name"]: ix for ix in sa.inspect(engine).get_indexes("model_versions")}
    engine.dispose()
    assert indexes[CHAMPION_INDEX]["unique"]


def test_migrated_schema_is_the_one_the_code_declares(store_url):
    engine = connect(store_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        inspector = sa.inspect(conn)
        tables = set(inspector.get_table_names())
        indexes = {
            t: {ix["name"] for ix in inspector.get_indexes(t) if not ix["unique"]}
            for t in ("history_batches", "runs")
        }
        unique = {t: _unique_columns(inspector, t) for t in ("history_batches", "runs")}
        ledger_key = inspector.get_pk_constraint("processed_files")["constrained_columns"]
    engine.dispose()
    assert diff == []
    assert {"model_versions", "history_batches", "processed_files", "runs"} <= tables
    assert indexes == {
        "history_batches": {"ix_history_batches_created_at"},
        "runs": {"ix_runs_started_at", "ix_runs_status"},
    }
    assert unique == {"history_batches": {"batch_id"}, "runs": {"run_id"}}
    assert ledger_key == ["sha256"]


def _unique_columns(inspector: sa.Inspector, table: str) -> set[str]:
    """Columns with a unique constraint or a unique index (SQLite reports either, PostgreSQL both)."""
    constraints = {c for uc in inspector.get_unique_constraints(table) for c in uc["column_names"]}
    return constraints | {
        c for ix in inspector.get_indexes(table) if ix["unique"] for c in ix["column_names"]
    }


def _store_at(url: str, revision: str, versions: list[dict]) -> None:
    """Migrate a fresh store to ``revision`` only and insert ``versions`` (rows of the old table)."""
    from alembic import command

    engine = sa.create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(LOCATION))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.execute(_old_table.insert(), versions)
    engine.dispose()


def test_a_store_at_0002_with_versions_is_upgraded_keeping_them(store_url):
    _store_at(
        store_url,
        "0002",
        [_old_row("2025x", False, None), _old_row("2025y", True, datetime(2025, 6, 1, tzinfo=UTC))],
    )
    assert _versions(store_url) == ["0002"]

    engine = connect(store_url)
    assert _versions(store_url) == [HEAD]
    registry = ModelRegistry(engine)
    assert [(v.version, v.is_champion) for v in registry.list_versions()] == [
        ("2025y", True),
        ("2025x", False),
    ]
    assert registry.get("2025y").metrics == {"model": {"r2": 0.31}}
    with engine.connect() as conn:
        for table in ("history_batches", "processed_files", "runs"):
            assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar() == 0
    engine.dispose()


def test_head_is_read_from_the_revision_file_names():
    config = Config()
    config.set_main_option("script_location", str(LOCATION))
    script = ScriptDirectory.from_config(config)
    assert script.get_heads() == [HEAD]
    for rev in script.walk_revisions():
        assert Path(rev.path).name.startswith(f"{rev.revision}_")  # the convention HEAD relies on


# The table exactly as the code before the migrations created it with ``create_all`` (no partial index).
_old = sa.MetaData()
_old_table = sa.Table(
    "model_versions",
    _old,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version", sa.String(64), unique=True, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("target", sa.String(32), nullable=False),
    *(
        sa.Column(name, sa.JSON, nullable=False)
        for name in ("metrics", "params", "training", "data_fingerprint", "artifacts")
    ),
    sa.Column("is_champion", sa.Boolean, nullable=False, default=False, index=True),
    sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
)


def _old_row(version: str, champion: bool, promoted: datetime | None) -> dict:
    return dict(
        version=version,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        target="holdout",
        metrics={"model": {"r2": 0.31}},
        params={},
        training={},
        data_fingerprint={},
        artifacts={"model": {"path": f"clv_model_{version}.joblib", "sha256": "0" * 64}},
        is_champion=champion,
        promoted_at=promoted,
    )


def test_a_store_of_the_old_code_is_stamped_then_upgraded_keeping_the_latest_champion(store_url):
    # the old code's race left two champions; the one promoted last stays champion
    old = sa.create_engine(store_url)
    _old.create_all(old)
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    with old.begin() as conn:
        conn.execute(
            _old_table.insert(),
            [
                _old_row("2026a", True, t0),
                _old_row("2026b", True, t0 + timedelta(seconds=5)),
                _old_row("2026c", False, None),
            ],
        )
    old.dispose()

    registry = ModelRegistry(connect(store_url))
    assert _versions(store_url) == [HEAD]
    assert [v.version for v in registry.list_versions() if v.is_champion] == ["2026b"]
    assert [v.version for v in registry.list_versions()] == ["2026c", "2026b", "2026a"]
    registry.promote("2026c")
    assert registry.champion().version == "2026c"
    with pytest.raises(sa.exc.IntegrityError), registry.engine.begin() as conn:  # the database refuses two
        conn.execute(sa.text("UPDATE model_versions SET is_champion = TRUE WHERE version = '2026a'"))
    assert [v.version for v in registry.list_versions() if v.is_champion] == ["2026c"]


def test_a_store_newer_than_the_code_is_a_clear_error(store_url):
    connect(store_url).dispose()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9001'"))
    engine.dispose()
    with pytest.raises(RegistryError, match=r"revision 9001, newer than this clvdrift's") as info:
        connect(store_url)
    assert "\n" not in str(info.value)


def test_connect_to_an_up_to_date_sqlite_store_does_not_import_alembic(tmp_path):
    """The fast path of every command: a store already at head is opened without Alembic (its import
    alone costs a few hundred ms). Checked in a fresh process, which is what every command is; a
    wall-clock limit is no unit test (a loaded CI machine)."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    connect(url).dispose()
    code = (
        "import json, sys; from clvdrift.store import connect; "
        f"connect({url!r}).dispose(); print(json.dumps('alembic' in sys.modules))"
    )
    assert json.loads(run_python(code)) is False


def test_a_store_at_0003_gets_the_run_of_each_version_and_one_version_per_run(store_url):
    _store_at(store_url, "0003", [_old_row("2025x", True, datetime(2025, 6, 1, tzinfo=UTC))])
    assert _versions(store_url) == ["0003"]

    registry = ModelRegistry(connect(store_url))
    assert _versions(store_url) == [HEAD]
    assert [(v.version, v.is_champion, v.run_id) for v in registry.list_versions()] == [("2025x", True, None)]
    row = {k: v for k, v in _old_row("2025y", False, None).items() if k not in ("version", "is_champion")}
    row.pop("promoted_at")
    row.pop("created_at")
    registry.register("2025y", **row, champion=False, run_id="airflow:manual__1")
    registry.register("2025z", **row, champion=False)  # no run: NULL repeats
    assert registry.of_run("airflow:manual__1").version == "2025y"
    assert registry.of_run("airflow:other") is None
    with pytest.raises(RegistryError, match="run airflow:manual__1 already registered model version 2025y"):
        registry.register("2025w", **row, champion=False, run_id="airflow:manual__1")
    with pytest.raises(sa.exc.IntegrityError), registry.engine.begin() as conn:  # the database refuses too
        conn.execute(
            sa.text("UPDATE model_versions SET run_id = 'airflow:manual__1' WHERE version = '2025z'")
        )
