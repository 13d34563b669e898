"""Per-column verdicts agree with Evidently 0.7 run on the same small frames."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest

from clvdrift.config import DriftConfig
from clvdrift.drift import build_profile, detect_data_drift

os.environ.setdefault("DO_NOT_TRACK", "1")
evidently = pytest.importorskip("evidently")

NUM = ["normal", "skewed", "small_int", "binary", "few"]
CAT = ["country", "yes_no"]


def _frame(n: int, rng: np.random.Generator, drift: bool) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "normal": rng.normal(0.4 if drift else 0.0, 1.0, n),
            "skewed": np.round(rng.lognormal(2.0, 1.0, n) * (1.3 if drift else 1.0), 2),
            "small_int": rng.poisson(3.0, n),
            "binary": (rng.random(n) < (0.45 if drift else 0.3)).astype(np.int64),
            "few": rng.integers(0, 4, n).astype(float),
            "country": rng.choice(
                ["UK", "DE", "FR", "NL"], n, p=[0.4, 0.3, 0.2, 0.1] if drift else [0.7, 0.1, 0.1, 0.1]
            ),
            "yes_no": rng.choice(["yes", "no"], n),
        }
    )


def _evidently(current: pd.DataFrame, reference: pd.DataFrame) -> dict[str, tuple[str, float, bool]]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    dd = DataDefinition(numerical_columns=NUM, categorical_columns=CAT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snap = Report([DataDriftPreset(drift_share=0.5)], include_tests=True).run(
            Dataset.from_pandas(current, data_definition=dd),
            Dataset.from_pandas(reference, data_definition=dd),
        )
    d = snap.dict()
    scores = {
        m["config"]["column"]: (m["config"]["method"], float(m["value"]))
        for m in d["metrics"]
        if m["config"]["type"].endswith(":ValueDrift")
    }
    out = {}
    for t in d["tests"]:
        params = t["metric_config"]["params"]
        if params["type"].endswith(":ValueDrift"):
            method, score = scores[params["column"]]
            out[params["column"]] = (method, score, str(t["status"]).endswith("FAIL"))
    return out


@pytest.mark.parametrize(("n_ref", "n_cur"), [(600, 400), (3000, 1500)])
@pytest.mark.parametrize("drift", [False, True])
def test_per_column_verdicts_agree_with_evidently(n_ref: int, n_cur: int, drift: bool) -> None:
    rng = np.random.default_rng(n_ref + drift)
    reference, current = _frame(n_ref, rng, False), _frame(n_cur, rng, drift)
    ours = detect_data_drift(
        build_profile(reference, numerical_columns=NUM, categorical_columns=CAT), current
    )
    theirs = _evidently(current, reference)
    assert {c.column for c in ours.columns} == set(theirs)
    for col in ours.columns:
        method, score, drifted = theirs[col.column]
        value = col.p_value if col.p_value is not None else col.statistic
        assert col.drifted == drifted, (col.column, col.test, value, method, score)
        assert value == pytest.approx(score, rel=1e-6, abs=1e-12), (col.column, col.test, method)
    if drift:
        assert ours.number_of_drifted_columns >= 3


@pytest.mark.parametrize("method", ["jensenshannon", "psi"])
def test_integer_columns_get_numpys_integer_bins_like_evidently(method: str) -> None:
    """A5: NumPy makes Sturges bins of an integer array at least 1 wide; Evidently concatenates reference
    and current, so both must be integer. 21 distinct values: bins narrower than 1 gave 0.36 vs 0.002."""
    rng = np.random.default_rng(17)
    ref = pd.DataFrame({"n": rng.integers(100, 121, 1500), "c": rng.choice(["a", "b"], 1500)})
    cur = pd.DataFrame({"n": rng.integers(100, 121, 700), "c": rng.choice(["a", "b"], 700)})
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    dd = DataDefinition(numerical_columns=["n"], categorical_columns=["c"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snap = Report([DataDriftPreset(per_column_method={"n": method})], include_tests=True).run(
            Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd)
        )
    theirs = next(
        float(m["value"])
        for m in snap.dict()["metrics"]
        if m["config"]["type"].endswith(":ValueDrift") and m["config"]["column"] == "n"
    )
    profile = build_profile(ref, numerical_columns=["n"], categorical_columns=["c"])
    ours = detect_data_drift(profile, cur, DriftConfig(per_column_stattest={"n": method})).column("n")
    assert ours.statistic == pytest.approx(theirs, rel=1e-6, abs=1e-12)
    assert ours.statistic < 0.05 and not ours.drifted  # same population: Evidently sees no drift
    floats = detect_data_drift(
        profile, cur.astype({"n": float}), DriftConfig(per_column_stattest={"n": method})
    )
    edges = np.histogram_bin_edges(np.concatenate([ref["n"], cur["n"]]).astype(float), bins="sturges")
    assert floats.column("n").note is not None and f"{edges.size - 1} Sturges bins" in floats.column("n").note
