"""Artifacts: versioned files for every version, ``*_latest`` and reference data for the champion only,
garbage collection of unregistered versions, temporary files of killed writers, permissions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clvdrift.config import RfParams
from clvdrift.errors import ArtifactError, ArtifactIntegrityError
from clvdrift.features import NUMERIC_FEATURES
from clvdrift.io import atomic_write, atomic_write_text, remove_stale_temp_files, sha256_file
from clvdrift.model.artifacts import (
    LATEST,
    REFERENCE_DATA_FILE,
    collect_garbage,
    load_model,
    publish_champion,
    read_metadata,
    write_artifacts,
)
from clvdrift.model.registry import ModelRegistry
from clvdrift.model.rf import RfModel
from clvdrift.store import connect
from helpers import dead_pid  # type: ignore[import-not-found]

DAY = 86_400


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(7)
    n = 37  # an odd, small cardinality; values on scales unlike the bundled file
    features = pd.DataFrame({name: rng.integers(1, 10_000, n).astype(float) for name in NUMERIC_FEATURES})
    features["Country"] = rng.choice(["Iceland", "Chile", "Japan"], n)
    return RfModel(RfParams(n_estimators=3), min_country_customers=5).fit(
        features, pd.Series(rng.gamma(2.0, 3e5, n))
    )


def write_version(model, models_dir: Path, version: str) -> dict:
    reference = pd.DataFrame({"CustomerID": [f"{version}-{i}" for i in range(5)], "x": range(5)})
    return write_artifacts(
        model,
        {"target": "holdout"},
        models_dir,
        version,
        extras={
            "profile": ("profile_{v}.json", lambda tmp: tmp.write_text(f'{{"v": "{version}"}}')),
            "reference": ("reference_{v}.csv", lambda tmp: reference.to_csv(tmp, index=False)),
        },
    )


def test_write_artifacts_writes_the_versioned_files_only(model, tmp_path):
    artifacts = write_version(model, tmp_path, "20260101_000000_000001")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        f"{stem}_20260101_000000_000001.{ext}"
        for stem, ext in [
            ("clv_model", "joblib"),
            ("scaler", "joblib"),
            ("features", "json"),
            ("metadata", "json"),
            ("profile", "json"),
            ("reference", "csv"),
        ]
    )
    assert read_metadata(tmp_path, "20260101_000000_000001")["artifacts"] == artifacts


def test_publish_champion_writes_latest_files_and_reference_data(model, tmp_path):
    models, refs = tmp_path / "models", tmp_path / "reference"
    champion = write_version(model, models, "v1")
    published = publish_champion(models, refs, "v1", champion)
    assert set(published) == {
        "model",
        "scaler",
        "features",
        "profile",
        "reference",
        "reference_data",
        "metadata",
    }
    assert published["reference_data"] == str(refs / REFERENCE_DATA_FILE)
    assert sha256_file(refs / REFERENCE_DATA_FILE) == champion["reference"]["sha256"]
    assert sha256_file(models / "profile_latest.json") == champion["profile"]["sha256"]
    assert sha256_file(models / "metadata_latest.json") == sha256_file(models / "metadata_v1.json")
    assert load_model(models, LATEST).feature_columns == model.feature_columns

    write_version(model, models, "v2")  # a challenger: the champion's files stay
    assert sha256_file(refs / REFERENCE_DATA_FILE) == champion["reference"]["sha256"]
    assert read_metadata(models, LATEST)["version"] == "v1"


def test_publish_champion_refuses_modified_or_mismatched_files(model, tmp_path):
    models, refs = tmp_path / "models", tmp_path / "reference"
    artifacts = write_version(model, models, "v1")
    (models / "reference_v1.csv").write_text("CustomerID,x\nforged,1\n")
    with pytest.raises(ArtifactIntegrityError, match=r"reference_v1\.csv: sha256"):
        publish_champion(models, refs, "v1", artifacts)
    assert not (refs / REFERENCE_DATA_FILE).exists() and not (models / "metadata_latest.json").exists()
    other = write_version(model, models, "v2")
    with pytest.raises(ArtifactError, match="no reference data"):
        publish_champion(models, refs, "v2", {k: v for k, v in other.items() if k != "reference"})


def _age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_collect_garbage_removes_only_unregistered_versions_and_stale_temp_files(model, tmp_path):
    models = tmp_path / "models"
    registry = ModelRegistry(connect(f"sqlite:///{tmp_path / 'store.db'}"))
    kept = write_version(model, models, "20260102_101010_000001")
    registry.register(
        "20260102_101010_000001",
        target="holdout",
        metrics={},
        params={},
        training={},
        data_fingerprint={},
        artifacts=kept,
    )
    publish_champion(models, models, "20260102_101010_000001", kept)  # reference_data.csv in models/ too
    write_version(model, models, "20251231_235959_999999")  # a killed run: never registered
    dead_temp = models / f".clv_model_x.joblib.{dead_pid()}-{_host(tmp_path)}.abcd1234.tmp"
    dead_temp.write_bytes(b"partial")
    for path in models.iterdir():
        _age(path, 2 * 3600)
    young = write_version(model, models, "20260103_000000_000000")  # a train still running

    would = collect_garbage(registry, models, dry_run=True)
    assert all(p.exists() for p in would)
    removed = collect_garbage(registry, models)
    assert removed == would
    assert sorted(p.name for p in removed) == sorted(
        [
            dead_temp.name,
            "clv_model_20251231_235959_999999.joblib",
            "scaler_20251231_235959_999999.joblib",
            "features_20251231_235959_999999.json",
            "metadata_20251231_235959_999999.json",
            "profile_20251231_235959_999999.json",
            "reference_20251231_235959_999999.csv",
        ]
    )
    left = {p.name for p in models.iterdir()}
    assert {kept[k]["path"] for k in kept} | {REFERENCE_DATA_FILE, "metadata_latest.json"} <= left
    assert {young[k]["path"] for k in young} <= left
    assert collect_garbage(registry, models) == []


def _host(tmp_path: Path) -> str:
    """This host's tag as atomic_write puts it in temporary names: ``.<name>.<pid>-<host>.<rand>.tmp``."""
    seen: list[Path] = []
    atomic_write(tmp_path / "probe" / "file", seen.append)
    return seen[0].name.split(".")[-3].split("-")[1]


def test_temp_file_names_carry_the_writer_pid(tmp_path):
    seen: list[Path] = []
    atomic_write(tmp_path / "out.json", lambda tmp: (seen.append(tmp), tmp.write_text("{}")))
    assert seen[0].name.startswith(f".out.json.{os.getpid()}-") and seen[0].name.endswith(".tmp")
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


KILLED_WRITER = """
import sys, time
from pathlib import Path
from clvdrift.io import atomic_write

def write(tmp):
    tmp.write_bytes(b"x" * 1000)
    print(tmp, flush=True)
    time.sleep(60)

atomic_write(Path(sys.argv[1]), write)
"""


def test_temp_file_of_a_writer_killed_mid_write_is_removed_and_live_ones_are_kept(tmp_path):
    target = tmp_path / "clv_model_v9.joblib"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    temp = Path(child.stdout.readline().strip())
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert temp.is_file() and not target.exists() and f".{child.pid}-" in temp.name

    host = _host(tmp_path / "probe")
    live = tmp_path / f".scaler_v9.joblib.{os.getpid()}-{host}.zz99yy88.tmp"  # this process is alive
    live.write_bytes(b"")
    old_live = tmp_path / f".features_v9.json.{os.getpid()}-{host}.oldoldol.tmp"
    old_live.write_bytes(b"")
    _age(old_live, 2 * DAY)  # a recycled PID cannot keep a day-old file
    other_host = tmp_path / f".features_v9.json.{child.pid}-ffffff.q1w2e3r4.tmp"
    other_host.write_bytes(b"")
    unrelated = tmp_path / ".notes.tmp"
    unrelated.write_bytes(b"")

    assert remove_stale_temp_files(tmp_path, dry_run=True) == sorted([temp, old_live])
    assert remove_stale_temp_files(tmp_path) == sorted([temp, old_live])
    assert sorted(p.name for p in tmp_path.glob(".*")) == sorted([live.name, other_host.name, unrelated.name])


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_write_respects_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "report.json", "{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == mode
