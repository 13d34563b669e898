"""A model scores a training set once per replay step: :func:`clvdrift.pipeline.common.predict_set`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from clvdrift.config import TrainConfig
from clvdrift.data import clean_transactions, load_transactions
from clvdrift.features import SharedLines, TransactionLines, build_training_set
from clvdrift.pipeline.common import predict_set
from clvdrift.pipeline.train import fit_on_cutoff
from helpers import synthetic_history  # type: ignore[import-not-found]


class Counting:
    """A model's predict, counted."""

    def __init__(self, model) -> None:
        self.model, self.calls = model, 0

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        self.calls += 1
        return self.model.predict(features)


def _setup(tmp_path: Path):
    synthetic_history(tmp_path / "tx.csv", customers=120, days=400, seed=3)
    clean, _ = clean_transactions(load_transactions(tmp_path / "tx.csv"))
    lines = TransactionLines.from_frame(clean)
    config = TrainConfig(horizon_days=60, model="rf")
    cutoff = lines.last_day() - pd.Timedelta(days=60)
    model, _ = fit_on_cutoff(lines, cutoff - pd.Timedelta(days=60), config)
    ts = build_training_set(lines, horizon_days=60, cutoff=cutoff)
    return lines, model, ts


def test_a_shared_step_scores_each_model_and_set_once(tmp_path: Path) -> None:
    lines, model, ts = _setup(tmp_path)
    shared = SharedLines(lines)
    counted, other = Counting(model), Counting(model)
    first = predict_set(shared, counted, ts)
    first[:] = -1.0  # the caller's own array: the memo keeps its values
    again = predict_set(shared, counted, ts)
    assert counted.calls == 1
    np.testing.assert_array_equal(again, model.predict(ts.features))
    # another model object, another set (a later cutoff) or plain lines: scored again
    predict_set(shared, other, ts)
    assert other.calls == 1
    later = build_training_set(
        lines, horizon_days=60, cutoff=ts.cutoff + pd.Timedelta(days=7), require_labels=False
    )
    np.testing.assert_array_equal(predict_set(shared, counted, later), model.predict(later.features))
    assert counted.calls == 2
    predict_set(lines, counted, ts)
    predict_set(lines, counted, ts)
    assert counted.calls == 4
    # a set of the same size with other rows (here: reversed) is scored anew, not served the first one's
    reversed_set = dataclasses.replace(ts, features=ts.features.iloc[::-1])
    np.testing.assert_array_equal(
        predict_set(shared, counted, reversed_set), model.predict(ts.features)[::-1]
    )
    assert counted.calls == 5
