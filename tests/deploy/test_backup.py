"""The backup and restore of docs/operations.md ("Back up and restore"), without Docker: the same
``pg_dump --format=custom`` / ``pg_restore --clean --if-exists --no-owner`` of the store and ``tar`` of the
artifact folder, on the real PostgreSQL. A champion trained into one database and folder is restored
into another database and an empty folder: the registry, the run history and the API keys come back,
the champion's files pass their checksums, and it predicts exactly as before."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import make_url

from service.conftest import seed_workspace  # type: ignore[import-not-found]


def _libpq(url: str) -> str:
    """The SQLAlchemy URL as libpq takes it (pg_dump, pg_restore)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run(*args: str | Path) -> None:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{args[0]}: {proc.stderr[-2000:]}"


def test_a_backup_restores_into_an_empty_database_and_folder(tmp_path: Path) -> None:
    from clvdrift.pipeline.champion import open_registry
    from clvdrift.pipeline.serving import load_serving_champion
    from clvdrift.store import RunStore, connect
    from clvdrift.store.apikeys import ApiKeys
    from store.pgdb import fresh_database  # type: ignore[import-not-found]

    assert shutil.which("pg_dump") and shutil.which("pg_restore"), "PostgreSQL's client tools are needed"
    with fresh_database() as source_url, fresh_database() as target_url:
        (tmp_path / "seed").mkdir()
        seeded, _ = seed_workspace(tmp_path / "seed")
        root = tmp_path / "live"
        ws = replace(
            seeded, database_url=source_url, models_dir=root / "models", reference_dir=root / "reference"
        )
        from clvdrift import pipeline

        trained = pipeline.train(
            ws.raw_data,
            registry=open_registry(source_url),
            models_dir=ws.models_dir,
            reference_dir=ws.reference_dir,
        )
        made, key = ApiKeys(connect(source_url)).create("backup test")
        champion = load_serving_champion(ws)
        rows = pd.read_csv(ws.reference_dir / "reference_data.csv")[champion.input_features]
        before = champion.model.predict(rows)

        # back up: the store, then the artifact folder
        dump, archive = tmp_path / "clvdrift-store.dump", tmp_path / "clvdrift-artifacts.tgz"
        _run("pg_dump", "--format=custom", f"--file={dump}", _libpq(source_url))
        _run("tar", "czf", archive, "-C", root, ".")

        # restore into another database and an empty folder
        restored_root = tmp_path / "restored"
        restored_root.mkdir()
        _run("pg_restore", "--clean", "--if-exists", "--no-owner", f"--dbname={_libpq(target_url)}", dump)
        _run("tar", "xzf", archive, "-C", restored_root)

        restored = replace(
            ws,
            database_url=target_url,
            models_dir=restored_root / "models",
            reference_dir=restored_root / "reference",
        )
        registry = open_registry(target_url)
        assert registry.champion() is not None and registry.champion().version == trained.version
        assert [r.run_id for r in RunStore(connect(target_url)).list()] == [
            r.run_id for r in RunStore(connect(source_url)).list()
        ]
        assert ApiKeys(connect(target_url)).verify(key) == made.key_id
        again = load_serving_champion(restored)  # every file checked against the restored registry
        assert np.array_equal(again.model.predict(rows), before)
