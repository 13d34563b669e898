from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from clvdrift.model.evaluate import (
    compare_to_baseline,
    gini_normalized,
    regression_metrics,
    top_share_capture,
)


def test_gini_perfect_random_and_reversed():
    y = np.array([0.0, 0.0, 1.0, 5.0, 10.0])
    assert gini_normalized(y, y) == pytest.approx(1.0)
    assert gini_normalized(y, -y) < 0
    # constant prediction = one big tie = random order → 0
    assert gini_normalized(y, np.ones_like(y)) == pytest.approx(0.0)


def test_gini_hand_computed():
    # actual [1, 2, 3]; prediction orders them 2, 3, 1 (scores 0.5, 0.9, 0.1 → order idx1, idx0, idx2)
    y = np.array([1.0, 2.0, 3.0])
    p = np.array([0.5, 0.9, 0.1])
    # cum shares by prediction: 2/6, 3/6, 6/6 → mean 11/18; minus (n+1)/(2n)=4/6 → -1/18
    # ideal: 3/6, 5/6, 6/6 → mean 14/18 - 12/18 = 2/18 → normalized -0.5
    assert gini_normalized(y, p) == pytest.approx(-0.5)


def test_top_share_capture():
    y = np.arange(10, dtype=float)  # total 45; top 10% = 1 customer
    assert top_share_capture(y, y) == pytest.approx(9 / 45)
    assert top_share_capture(y, -y) == pytest.approx(0.0)


def test_regression_metrics_against_formulas():
    rng = np.random.default_rng(0)
    y = rng.gamma(1.0, 100.0, 500)
    p = y + rng.normal(0, 30, 500)
    m = regression_metrics(y, p)
    assert m["mae"] == pytest.approx(np.abs(p - y).mean(), rel=1e-5)
    assert m["rmse"] == pytest.approx(np.sqrt(((p - y) ** 2).mean()), rel=1e-5)
    assert m["r2"] == pytest.approx(1 - ((p - y) ** 2).sum() / ((y - y.mean()) ** 2).sum(), rel=1e-5)
    assert m["spearman"] == pytest.approx(spearmanr(y, p).statistic, rel=1e-5)
    assert m["total_ratio"] == pytest.approx(p.sum() / y.sum(), rel=1e-5)


def test_undefined_metrics_are_nan_not_errors():
    m = regression_metrics(np.zeros(5), np.arange(5.0))
    assert math.isnan(m["r2"]) and math.isnan(m["gini_normalized"]) and math.isnan(m["total_ratio"])


def test_compare_to_baseline():
    y = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    good = y * 2
    bad = np.array([4.0, 3.0, 2.0, 1.0, 0.0])
    assert compare_to_baseline(y, good, bad)["beats_baseline"] is True
    assert compare_to_baseline(y, bad, good)["beats_baseline"] is False


@pytest.mark.parametrize("actual", [[5.0], [3.0, 3.0, 3.0], [0.0, 0.0]])
def test_gini_without_a_ranking_is_nan_not_a_crash(actual):
    """One customer, equal values or no revenue: no ranking exists, so the metric is undefined (NaN)."""
    assert math.isnan(gini_normalized(np.array(actual), np.arange(len(actual), dtype=float)))
    metrics = regression_metrics(np.array(actual), np.arange(len(actual), dtype=float))
    assert math.isnan(metrics["gini_normalized"])
