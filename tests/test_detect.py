"""The drift check end to end on the bundled data: the scenarios are the acceptance fixtures."""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from clvdrift import pipeline
from clvdrift.data import load_transactions, simulate_scenario
from clvdrift.errors import ArtifactIntegrityError, DataError
from clvdrift.model.base import TrainingRecord
from conftest import BUNDLED  # type: ignore[import-not-found]


@pytest.fixture(scope="module")
def raw():
    return load_transactions(BUNDLED)


def check(trained, frame, tmp_path, **kwargs):
    root, registry, _ = trained
    return pipeline.detect_transactions(
        frame,
        registry=registry,
        models_dir=root / "models",
        reports_dir=tmp_path / "reports",
        source="test",
        **kwargs,
    )


def test_none_scenario_is_clean(trained, raw, tmp_path):
    result = check(trained, simulate_scenario(raw, "none", seed=42), tmp_path, render_html=False)
    assert result.data_drift.dataset_drift is False
    assert result.data_drift.number_of_drifted_columns == 0
    assert result.model_drift.labels_available is True and result.model_drift.detected is False
    assert result.decision == pipeline.Decision(
        retraining_required=False, data_drift_detected=False, model_drift_detected=False, reasons=[]
    )


@pytest.mark.parametrize("seed", [1, 42])
def test_data_drift_scenario_is_caught(trained, raw, tmp_path, seed):
    result = check(trained, simulate_scenario(raw, "data-drift", seed=seed), tmp_path, render_html=False)
    drifted = set(result.data_drift.drifted_columns)
    assert {"Monetary", "AvgUnitPrice", "TotalQuantity"} <= drifted
    assert "Recency" not in drifted and "Country" not in drifted
    assert result.data_drift.dataset_drift is True and result.retraining_required
    assert any("data drift" in r for r in result.decision.reasons)


def test_model_drift_scenario_is_caught(trained, raw, tmp_path):
    result = check(trained, simulate_scenario(raw, "model-drift", seed=42), tmp_path, render_html=False)
    md = result.model_drift
    assert md.detected is True and md.labels_available is True
    assert md.current["mae"] > 10 * md.reference["mae"]
    # the batch overlaps the champion's labels: its held-out customers are scored, against their own
    # figures on the training window (never in-sample)
    assert md.reference == trained[2].evaluation["random_split"]["model"]
    assert result.decision.model_drift_detected and result.retraining_required


def test_model_drift_is_never_scored_on_training_customers(trained, raw, tmp_path):
    """The seed's scenarios cover the training period: only the champion's held-out customers count, and
    on them the unchanged data scores like the held-out evaluation (in-sample it would look far better)."""
    _, _, train_result = trained
    result = check(trained, simulate_scenario(raw, "none", seed=42), tmp_path, render_html=False)
    scope = result.model_drift_scope
    assert scope.customers_excluded == train_result.training["train_customers"]
    assert scope.customers_scored == train_result.training["test_customers"]
    assert "excluded" in scope.rule
    held_out = train_result.evaluation["random_split"]["model"]
    assert result.model_drift.current["mae"] == pytest.approx(held_out["mae"], rel=1e-6)
    assert result.model_drift.current["r2"] == pytest.approx(held_out["r2"], rel=1e-6)
    # the stacked champion saw labels from its first training cutoff on: a window of June overlaps too
    record = TrainingRecord.from_dict(train_result.training)
    assert record.first_cutoff < "2011-06-01" and record.labels_overlap("2011-06-01", 91)
    earlier = check(trained, raw, tmp_path, render_html=False, cutoff="2011-06-01")  # labels end 2011-08-31
    assert 0 < earlier.model_drift_scope.customers_excluded < earlier.current.customers
    # a window that ends before the first training cutoff does not overlap
    assert not record.labels_overlap(
        "2010-12-01", (pd.Timestamp(record.first_cutoff) - pd.Timestamp("2010-12-01")).days
    )


def test_json_result_and_latest_copy(trained, raw, tmp_path):
    result = check(trained, simulate_scenario(raw, "data-drift", seed=3), tmp_path, render_html=False)
    run_json = tmp_path / "reports" / result.run_id / "drift_report.json"
    latest = tmp_path / "reports" / "latest_drift_report.json"
    assert json.loads(run_json.read_text()) == json.loads(latest.read_text())
    doc = json.loads(latest.read_text())
    assert set(doc) == {
        "run_id",
        "created_at",
        "model_version",
        "current",
        "data_drift",
        "model_drift",
        "model_drift_scope",
        "decision",
        "reports",
        "timings",
    }
    col = doc["data_drift"]["columns"][0]
    assert {"column", "test", "statistic", "threshold", "drifted", "p_value", "effect_size"} <= set(col)


def test_check_batch_writes_nothing_and_write_reports_writes_what_it_found(trained, raw, tmp_path):
    root, registry, _ = trained
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    batch = simulate_scenario(raw, "data-drift", seed=3)
    checked = pipeline.check_batch(batch, registry=registry, models_dir=root / "models", source="test")
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert not (tmp_path / "reports").exists()
    assert checked.reports == {} and checked.evidence is not None
    assert checked.data_drift.dataset_drift is True
    assert "evidence" not in checked.to_dict()
    written = pipeline.write_reports(checked, tmp_path / "reports", render_html=False)
    doc = json.loads((tmp_path / "reports" / checked.run_id / "drift_report.json").read_text())
    assert doc == json.loads(json.dumps(written.to_dict()))
    assert doc["decision"] == checked.decision.to_dict() and doc["run_id"] == checked.run_id
    assert doc["reports"]["json"].endswith(f"{checked.run_id}/drift_report.json")


def test_labels_not_available_is_said_not_invented(trained, raw, tmp_path):
    recent = raw[raw["InvoiceDate"] >= "2011-11-01"].reset_index(drop=True)  # 39 days < H = 91
    result = check(trained, recent, tmp_path, render_html=False)
    md = result.model_drift
    assert md.labels_available is False and md.detected is False and md.current is None
    assert "not observed yet" in md.note
    assert result.current.labels_available is False and result.current.cutoff == "2011-12-09"


def test_empty_batch_is_a_clear_error(trained, raw, tmp_path):
    with pytest.raises(DataError, match="no usable transactions"):
        check(trained, raw[raw["CustomerID"].isna()].reset_index(drop=True), tmp_path)


def test_html_reports_rendered_with_evidently(trained, raw, tmp_path):
    result = check(trained, simulate_scenario(raw, "data-drift", seed=1), tmp_path)
    for key in ("data_drift_html", "regression_html"):
        path = result.reports[key]
        assert path and os.path.getsize(path) > 100_000, key
        with open(path, encoding="utf-8") as page:
            assert "<html" in page.read(2000).lower()


def test_tampered_profile_is_refused(trained, raw, tmp_path):
    import shutil

    root, registry, result = trained
    models = tmp_path / "models"
    shutil.copytree(root / "models", models)
    profile = models / result.artifacts["profile"]["path"]

    def detect():
        return pipeline.detect_transactions(
            raw,
            registry=registry,
            models_dir=models,
            reports_dir=tmp_path / "r",
            source="test",
            render_html=False,
        )

    detect()  # the profile is parsed and kept for its sha256; the file is still checked every time
    profile.write_text(profile.read_text() + " ")  # any change to the file changes its sha256
    with pytest.raises(ArtifactIntegrityError):
        detect()


@pytest.mark.parametrize("name", ["profile", "reference"])
def test_a_reference_file_swapped_after_it_was_read_is_not_loaded(trained, raw, tmp_path, monkeypatch, name):
    """The reference profile and data are each read once: their sha256 is checked on the very bytes that
    are loaded. A valid-looking file swapped in after that read (another process, a shared volume) is
    neither loaded nor, on the next check, accepted."""
    from clvdrift.drift import build_profile
    from clvdrift.pipeline.detect import PROFILE_CATEGORICAL, PROFILE_NUMERIC

    root, registry, trained_result = trained
    models = tmp_path / "models"
    shutil.copytree(root / "models", models)
    batch = simulate_scenario(raw, "none", seed=42)

    def run():
        return pipeline.detect_transactions(
            batch,
            registry=registry,
            models_dir=models,
            reports_dir=tmp_path / "r",
            source="t",
            render_html=False,
        )

    before = run()
    target = (models / trained_result.artifacts[name]["path"]).resolve()
    reference = pd.read_csv(models / trained_result.artifacts["reference"]["path"], index_col="CustomerID")
    if name == "profile":  # a valid profile of other data: every check of the profile itself passes
        evil = reference.assign(Monetary=reference["Monetary"] * 10, prediction=reference["prediction"] * 10)
        build_profile(evil, numerical_columns=PROFILE_NUMERIC, categorical_columns=PROFILE_CATEGORICAL).save(
            tmp_path / "evil.json"
        )
        swap = (tmp_path / "evil.json").read_bytes()
    else:  # no training customers: model drift would be scored on them
        swap = reference.assign(split="test").to_csv(index_label="CustomerID").encode()

    opens: dict[Path, int] = {}
    swapped: list[bool] = []
    real_open = builtins.open

    class Swapping(io.BufferedReader):
        def close(self) -> None:
            super().close()
            if not swapped:
                swapped.append(True)
                with real_open(target, "wb") as fh:
                    fh.write(swap)

    def counting_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and "r" in mode:
            path = Path(file).resolve()
            if models in path.parents or models.resolve() in path.parents:
                opens[path] = opens.get(path, 0) + 1
                if path == target and not swapped and isinstance(handle, io.BufferedReader):
                    return Swapping(handle.detach())
        return handle

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)
    after = run()
    monkeypatch.undo()

    assert swapped, f"{name} was never read"
    assert target.read_bytes() == swap
    # what was loaded is what was checked: the check's bytes, not the swapped file
    assert after.data_drift.to_dict() == before.data_drift.to_dict()
    assert after.model_drift_scope == before.model_drift_scope
    assert after.model_drift.to_dict() == before.model_drift.to_dict()
    assert opens[target] == 1, opens
    with pytest.raises(ArtifactIntegrityError, match="does not match"):
        run()
