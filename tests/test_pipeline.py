"""End to end on the bundled file: train, artifacts, checksums, reference data, scenarios."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from clvdrift import pipeline
from clvdrift.config import GbmParams, TrainConfig
from clvdrift.errors import ArtifactIntegrityError, DataError
from clvdrift.features import NUMERIC_FEATURES
from clvdrift.model.artifacts import load_model, sha256_file


def test_the_default_model_beats_persistence_and_the_seed_rf_through_time(trained):
    """The table `train` (and the demo) prints: judged through time — fitted at 2011-06-10, scored on the
    91 days after 2011-09-09 — the default gbm is ahead of persistence on every metric of rank and money,
    and ahead of the seed's forest on Spearman and MAE."""
    _, _, result = trained
    ev = result.evaluation
    assert ev["split"] == "time" and ev["family"] == "gbm"
    assert ev["window"]["trained_at"] == "2011-06-10" and ev["window"]["scored_at"] == "2011-09-09"
    assert ev["customers"] == result.training["customers"]
    model, persistence, rf = ev["model"], ev["baseline"], ev["rf"]
    for metric in ("spearman", "gini_normalized", "top10_capture", "r2"):
        assert model[metric] > persistence[metric], metric
    for metric in ("mae", "rmse"):
        assert model[metric] < persistence[metric], metric
    assert model["spearman"] > rf["spearman"] and model["mae"] < rf["mae"]
    assert ev["beats_baseline"] is True
    assert ev["season"]["status"] == "uncalibrated" and "calibrated" not in ev  # one year of history
    assert result.training["cutoff"] == "2011-09-09" and result.training["horizon_days"] == 91
    assert result.training["family"] == "gbm" and result.training["stacked_cutoffs"] > 20


def test_seed_artifact_files_and_checksums(trained):
    root, _, result = trained
    models = root / "models"
    v = result.version
    for name in (
        f"clv_model_{v}.joblib",
        f"features_{v}.json",
        f"metadata_{v}.json",
        "clv_model_latest.joblib",
        "features_latest.json",
        "metadata_latest.json",
    ):
        assert (models / name).is_file(), name
    assert not (models / f"scaler_{v}.joblib").exists()  # the gbm family has no scaler
    meta = json.loads((models / f"metadata_{v}.json").read_text())
    assert meta["family"] == "gbm" and meta["params"]["max_iter"] == 200 and meta["params"]["step_days"] == 7
    assert meta["data_fingerprint"]["rows"] == 541_909
    for name, info in meta["artifacts"].items():
        assert sha256_file(models / info["path"]) == info["sha256"], name
    assert sha256_file(models / "clv_model_latest.joblib") == meta["artifacts"]["model"]["sha256"]
    assert not list(models.glob(".*.tmp"))  # no temporary file left behind
    features = json.loads((models / f"features_{v}.json").read_text())
    assert features["family"] == "gbm" and not features["seasonal"]  # one year: no season features
    assert features["input_features"][: len(NUMERIC_FEATURES)] == list(NUMERIC_FEATURES)
    assert features["input_features"][-1] == "Country" and "Revenue90d" in features["input_features"]


def test_reference_data(trained):
    _, _, result = trained
    ref = pd.read_csv(result.reference_path)
    assert {*NUMERIC_FEATURES, "Country", "target", "prediction", "split", "CustomerID"} <= set(ref.columns)
    assert len(ref) == result.training["customers"]
    assert (ref["split"] == "test").sum() == result.training["test_customers"]


def test_registry_records_version_and_champion(trained):
    _, registry, result = trained
    champion = registry.champion()
    assert champion.version == result.version and result.champion
    assert champion.artifacts == result.artifacts


def test_loading_verifies_checksums_and_refuses_tampering(trained, tmp_path):
    root, registry, result = trained
    models = tmp_path / "models"
    shutil.copytree(root / "models", models)
    champion = registry.champion()
    model = load_model(models, champion.version, expected=champion.artifacts)
    ref = pd.read_csv(result.reference_path, index_col="CustomerID", float_precision="round_trip")
    assert (abs(model.predict(ref) - ref["prediction"].to_numpy()) < 1e-6).all()
    # the same verified bytes load once per process; the checksums are still checked on every load
    assert load_model(models, champion.version, expected=champion.artifacts) is model
    path = models / f"clv_model_{champion.version}.joblib"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="refusing"):
        load_model(models, champion.version, expected=champion.artifacts)
    # a consistent forgery (file + its metadata) is still caught by the registry's record
    meta_path = models / f"metadata_{champion.version}.json"
    meta = json.loads(meta_path.read_text())
    meta["artifacts"]["model"]["sha256"] = sha256_file(path)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ArtifactIntegrityError):
        load_model(models, champion.version, expected=champion.artifacts)


def test_second_training_is_a_challenger(trained):
    root, registry, result = trained
    from conftest import BUNDLED  # type: ignore[import-not-found]

    second = pipeline.train(
        BUNDLED,
        registry=registry,
        models_dir=root / "models2",
        reference_dir=root / "reference2",
        config=TrainConfig(target="formula"),
    )
    assert not second.champion and registry.champion().version == result.version
    assert len(registry.list_versions()) == 2
    # a challenger writes its versioned files only: no *_latest copy, no reference_data.csv
    assert second.reference_path is None
    assert not list((root / "models2").glob("*_latest*")) and not (root / "reference2").exists()


def test_simulate_writes_current_data(tmp_path):
    from helpers import synthetic_history  # type: ignore[import-not-found]

    history = tmp_path / "history.csv"
    synthetic_history(history)
    rows = len(pd.read_csv(history))
    info = pipeline.simulate(history, "data-drift", seed=5, current_dir=tmp_path)
    frame = pd.read_csv(info.path)
    assert len(frame) == rows and list(frame.columns)[:2] == ["InvoiceNo", "StockCode"]
    assert info.mean_quantity > pd.read_csv(history)["Quantity"].mean() * 1.4  # Quantity × U(1.5, 3)
    again = pipeline.simulate(history, "data-drift", seed=5, current_dir=tmp_path / "b")
    assert sha256_file(tmp_path / "b" / "current_data.csv") == sha256_file(tmp_path / "current_data.csv")
    assert again.rows == info.rows


def test_bad_input_leaves_registry_untouched(trained, tmp_path):
    root, registry, _ = trained
    before = len(registry.list_versions())
    bad = tmp_path / "bad.csv"
    bad.write_text("InvoiceNo,StockCode\n1,2\n")
    with pytest.raises(DataError, match="missing required column"):
        pipeline.train(bad, registry=registry, models_dir=root / "models", reference_dir=root / "reference")
    assert len(registry.list_versions()) == before


def test_training_removes_temporary_files_of_killed_runs(trained, tmp_path):
    """A run killed mid-write leaves `.<name>.<pid>-<host>.<random>.tmp`; the next training removes it."""
    import os
    import subprocess
    import sys

    from helpers import synthetic_history  # type: ignore[import-not-found]

    _, registry, _ = trained
    models = tmp_path / "models"
    models.mkdir()
    code = (
        "import sys, time; from pathlib import Path; from clvdrift.io import atomic_write; "
        "atomic_write(Path(sys.argv[1]), lambda tmp: (tmp.write_text('half'), print('writing', flush=True), "
        "time.sleep(60)))"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(models / "clv_model_x.joblib")], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "writing"
    child.kill()
    child.wait()
    assert len(list(models.glob(".*.tmp"))) == 1
    history = tmp_path / "history.csv"
    synthetic_history(history)
    pipeline.train(
        history, registry=registry, models_dir=models, reference_dir=tmp_path / "ref", champion=False
    )
    assert list(models.glob(".*.tmp")) == [] and os.listdir(models)


def _train_promote(args: tuple[str, str, str]) -> str:
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.store import connect

    history, url, root = args
    registry = ModelRegistry(connect(url))
    return pipeline.train(
        Path(history),
        registry=registry,
        models_dir=Path(root) / "models",
        reference_dir=Path(root) / "ref",
        champion=True,
        lock_wait_seconds=300,  # one training at a time: they queue for the store's training lock
        config=TrainConfig(gbm=GbmParams(max_iter=50)),  # the files are tested, not the model: 4x faster
    ).version


def test_concurrent_promotions_leave_the_files_of_the_registry_champion(tmp_path):
    """Four `train --promote` started at once (queued by the training lock): one champion in the
    registry, and the *_latest files and reference_data.csv are that champion's."""
    import multiprocessing

    from clvdrift.model.registry import ModelRegistry
    from clvdrift.store import connect
    from helpers import synthetic_history  # type: ignore[import-not-found]

    history = tmp_path / "history.csv"
    synthetic_history(history)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        versions = pool.map(_train_promote, [(str(history), url, str(tmp_path))] * 4)
    registry = ModelRegistry(connect(url))
    champions = [v for v in registry.list_versions() if v.is_champion]
    assert len(champions) == 1 and {v.version for v in registry.list_versions()} == set(versions)
    latest = json.loads((tmp_path / "models" / "metadata_latest.json").read_text())
    assert latest["version"] == champions[0].version
    reference = tmp_path / "ref" / "reference_data.csv"
    assert sha256_file(reference) == champions[0].artifacts["reference"]["sha256"]
