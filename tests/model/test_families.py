"""The model-family seam: both families fit, predict without changing themselves, round-trip through
the checksummed artifacts and load by checksum; an rf artifact written by an earlier version still loads.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from clvdrift.config import GbmParams, RfParams, TrainConfig
from clvdrift.errors import ArtifactIntegrityError, ConfigError, DataError
from clvdrift.features import CUTOFF_COLUMN, HISTORY_FEATURES, NUMERIC_FEATURES, SEASON_FEATURES
from clvdrift.model.artifacts import load_model, write_artifacts
from clvdrift.model.base import new_model
from clvdrift.model.gbm import GbmModel
from clvdrift.model.rf import RfModel


def _data(n: int, seed: int, *, span_days: int = 60) -> tuple[pd.DataFrame, pd.Series]:
    """Feature rows on scales unlike the bundled file, stacked over cutoffs ``span_days`` apart."""
    rng = np.random.default_rng(seed)
    columns = [*NUMERIC_FEATURES, *HISTORY_FEATURES, *SEASON_FEATURES]
    features = pd.DataFrame({name: rng.lognormal(3.0, 2.0, n) for name in columns})
    features.loc[rng.random(n) < 0.2, "DaysBetweenOrders"] = np.nan  # missing values are native
    features["Country"] = rng.choice(["Peru", "Kenya", "Laos", "Malta"], n)
    features[CUTOFF_COLUMN] = pd.Timestamp("2030-01-01") + pd.to_timedelta(
        rng.integers(0, span_days + 1, n), unit="D"
    )
    features.loc[features.index[0], CUTOFF_COLUMN] = pd.Timestamp("2030-01-01")
    features.loc[features.index[1], CUTOFF_COLUMN] = pd.Timestamp("2030-01-01") + pd.Timedelta(days=span_days)
    target = pd.Series(rng.poisson(3, n) * rng.gamma(1.5, 70.0, n) + features["Monetary"] / 100)
    return features, target


def _fit(family: str, n: int = 3_000, seed: int = 11, **kw):
    features, target = _data(n, seed, **kw)
    if family == "rf":
        return RfModel(RfParams(n_estimators=40), min_country_customers=5).fit(features, target), features
    return GbmModel(GbmParams(max_iter=40), min_country_customers=5).fit(features, target), features


@pytest.mark.parametrize("family", ["rf", "gbm"])
def test_predictions_are_bit_identical_and_predict_changes_nothing(family):
    model, features = _fit(family)
    before = pickle.dumps(model.state())
    first = model.predict(features)
    for _ in range(10):
        assert np.array_equal(model.predict(features), first)
    assert pickle.dumps(model.state()) == before  # predict changed no parameter of the estimator


def test_gbm_views_fitted_on_threads_equal_views_fitted_one_after_the_other(monkeypatch):
    """Below PARALLEL_MIN_ROWS the two views are fitted on two threads: the boosters must be the ones a
    fit on one core makes, bit for bit."""
    import os

    threaded, features = _fit("gbm", n=2_000, seed=5)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # one after the other
    serial, _ = _fit("gbm", n=2_000, seed=5)
    assert pickle.dumps(threaded.state()) == pickle.dumps(serial.state())
    assert np.array_equal(threaded.predict(features), serial.predict(features))


def test_gbm_averages_its_btyd_part_and_an_earlier_gbm_without_one_still_loads():
    """The BG/NBD × Gamma-Gamma expected revenue is the third part of the average; predict_columns (the
    service) gives what predict gives; a document saved before the part existed loads as the two
    boosters alone; ``btyd=False`` fits none."""
    features, target = _data(2_000, 7)
    rng = np.random.default_rng(7)  # customers the BTYD inputs could come from: orders, tenure ≥ recency
    features["NumOrders"] = rng.geometric(0.3, len(features)).astype(float)
    features["TenureDays"] = rng.uniform(30, 700, len(features))
    features["Recency"] = features["TenureDays"] * rng.uniform(0, 1, len(features)) ** 2
    features["Monetary"] = features["NumOrders"] * rng.lognormal(4, 0.8, len(features))
    features[CUTOFF_COLUMN] = pd.Timestamp("2030-03-01")  # BTYD is fitted on the newest cutoff's rows
    model = GbmModel(GbmParams(max_iter=40), min_country_customers=5).fit(features, target)
    assert model.btyd_ is not None and model.btyd_scale_ > 0
    columns = {c: features[c].to_numpy() for c in model.input_features}
    predicted = model.predict(features)
    assert np.array_equal(model.predict_columns(columns), predicted)
    boosters = np.mean(
        [
            b.predict(model._matrix(features, v))
            for b, v in zip(model.boosters_.values(), model.views_.values(), strict=True)
        ],
        axis=0,
    )
    assert not np.allclose(predicted, boosters)  # the third part moves the average
    earlier = {k: v for k, v in model.document().items() if k not in ("btyd", "horizon_days")}
    earlier["params"] = {k: v for k, v in earlier["params"].items() if k != "btyd"}
    loaded = GbmModel.from_state(model.state(), earlier)
    assert loaded.btyd_ is None
    assert np.allclose(loaded.predict(features), boosters, rtol=1e-12)
    off = GbmModel(GbmParams(max_iter=40, btyd=False), min_country_customers=5).fit(features, target)
    assert off.btyd_ is None and off.document()["btyd"] is None


def test_a_forest_pickled_with_parallel_prediction_is_loaded_on_one_core():
    model, features = _fit("rf")
    model.estimator_.set_params(n_jobs=-1)  # as forests fitted before the one-core rule were stored
    loaded = RfModel.from_state(model.state(), model.document())
    assert loaded.estimator_.n_jobs == 1
    first = loaded.predict(features)
    for _ in range(10):
        assert np.array_equal(loaded.predict(features), first)


def test_gbm_uses_the_season_features_only_when_its_cutoffs_span_a_year():
    short, _ = _fit("gbm", span_days=200)
    long, features = _fit("gbm", span_days=400)
    assert not short.seasonal_ and not set(SEASON_FEATURES) & set(short.input_features)
    assert long.seasonal_ and set(SEASON_FEATURES) <= set(long.input_features)
    with pytest.raises(DataError, match="missing column"):
        long.predict(features.drop(columns=["LastYearRevenue"]))


def test_a_feature_missing_on_every_training_row_is_left_out_of_the_view():
    """A lookback window shorter than a year over cutoffs spanning a year: last year's revenue is missing on
    every row, and scikit-learn failed to bin it ("window shape cannot be larger than input array shape",
    exit 4; found by an adversarial check)."""
    features, target = _data(1_500, 4, span_days=400)
    features["LastYearRevenue"] = np.nan
    model = GbmModel(GbmParams(max_iter=40), min_country_customers=5).fit(features, target)
    assert model.seasonal_ and "LastYearRevenue" not in model.views_["full"]
    assert "SeasonSin" in model.views_["full"]
    loaded = GbmModel.from_state(model.state(), model.document())
    assert np.array_equal(loaded.predict(features), model.predict(features))
    assert np.isfinite(model.predict(features)).all()


def test_gbm_refuses_a_negative_target():
    features, target = _data(200, 3)
    with pytest.raises(DataError, match="target ≥ 0"):
        GbmModel().fit(features, target - 1e6)


def test_new_model_follows_the_config_and_rejects_unknown_families():
    assert new_model(TrainConfig()).family == "gbm"
    assert new_model(TrainConfig(model="rf")).family == "rf"
    assert new_model(TrainConfig(rf=RfParams(n_estimators=7)), "rf").params["n_estimators"] == 7
    with pytest.raises(ConfigError, match="unknown model family"):
        new_model(TrainConfig(), "xgb")


def _write(model, models_dir: Path, version: str) -> dict:
    return write_artifacts(model, {"target": "holdout"}, models_dir, version)


@pytest.mark.parametrize("family", ["rf", "gbm"])
def test_both_families_round_trip_through_the_artifacts_and_load_by_checksum(family, tmp_path):
    model, features = _fit(family, n=800)
    artifacts = _write(model, tmp_path, "20300101_000000_000001")
    files = {name: info["path"] for name, info in artifacts.items()}
    assert set(files) == {"features", *model.files}
    loaded = load_model(tmp_path, "20300101_000000_000001", expected=artifacts)
    assert type(loaded) is type(model) and loaded.input_features == model.input_features
    assert np.array_equal(loaded.predict(features), model.predict(features))
    # a modified model file is refused, whatever the family
    model_file = tmp_path / files["model"]
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        load_model(tmp_path, "20300101_000000_000001", expected=artifacts)


def test_an_rf_artifact_of_an_earlier_version_still_loads(tmp_path):
    """The layout the previous release wrote: the bare forest, the scaler, a features document without
    a family, and metadata recording the three checksums."""
    model, features = _fit("rf", n=600)
    version = "20250101_000000_000001"
    old_doc = {
        "numeric_features": list(NUMERIC_FEATURES),
        "countries": model.encoder.levels_,
        "min_country_customers": model.encoder.min_customers,
        "feature_columns": model.feature_columns,
    }
    model.estimator_.set_params(n_jobs=-1)  # the earlier version pickled n_jobs=-1 forests too
    blobs = {}
    for name, obj in (("model", model.estimator_), ("scaler", model.scaler_)):
        buffer = io.BytesIO()
        joblib.dump(obj, buffer)
        blobs[name] = buffer.getvalue()
    blobs["features"] = json.dumps(old_doc).encode()
    names = {"model": "clv_model_{v}.joblib", "scaler": "scaler_{v}.joblib", "features": "features_{v}.json"}
    artifacts = {}
    for name, blob in blobs.items():
        path = tmp_path / names[name].format(v=version)
        path.write_bytes(blob)
        artifacts[name] = {"path": path.name, "sha256": hashlib.sha256(blob).hexdigest()}
    meta = {"version": version, "artifacts": artifacts}
    (tmp_path / f"metadata_{version}.json").write_text(json.dumps(meta))
    loaded = load_model(tmp_path, version, expected=artifacts)
    assert isinstance(loaded, RfModel) and loaded.estimator_.n_jobs == 1
    assert np.allclose(loaded.predict(features), model.predict(features), rtol=0, atol=1e-9)


def test_a_gbm_fitted_on_all_cores_predicts_on_one_thread(monkeypatch):
    """scikit-learn keeps the fit's OpenMP thread count in each booster's bin mapper and bins with it at
    prediction; a model fitted on many rows (all cores) or on a bigger machine is loaded and kept on one
    thread (found by an adversarial check: a forked child hung)."""
    from clvdrift.model import gbm

    monkeypatch.setattr(gbm, "PARALLEL_MIN_ROWS", 100)  # this small fit runs on all cores
    model, features = _fit("gbm", n=600)
    assert {b._bin_mapper.n_threads for b in model.boosters_.values()} == {1}
    for booster in model.boosters_.values():
        booster._bin_mapper.n_threads = 64  # as stored by a 64-core machine
    loaded = GbmModel.from_state(model.state(), model.document())
    assert {b._bin_mapper.n_threads for b in loaded.boosters_.values()} == {1}
    assert np.array_equal(loaded.predict(features), model.predict(features))


def test_gbm_predicts_in_a_child_forked_after_a_pooled_prediction():
    """A batch of ≥ CHUNKED_MIN_ROWS rows is scored on a thread pool; a child forked afterwards gets a new
    pool (the parent's has no threads in the child: its chunks would never run)."""
    import multiprocessing

    from clvdrift.model.gbm import CHUNKED_MIN_ROWS

    model, _ = _fit("gbm", n=600)
    big, _ = _data(CHUNKED_MIN_ROWS + 10, 5)
    want = model.predict(big)  # the pool exists now

    def child(queue):  # type: ignore[no-untyped-def]
        queue.put(np.array_equal(model.predict(big), want))

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(queue,))
    proc.start()
    proc.join(60)
    hung = proc.is_alive()
    if hung:
        proc.kill()
    assert not hung, "the forked child hung in the inherited thread pool"
    assert queue.get(timeout=5) is True
