from __future__ import annotations

import numpy as np
import pytest

from clvdrift.data import simulate_scenario
from clvdrift.errors import ConfigError
from helpers import tx_frame  # type: ignore[import-not-found]


@pytest.fixture
def raw():
    rows = [
        (f"5{i:05d}", "22633", 1 + i % 7, "2011-01-05 10:00", 1.0 + (i % 5), str(100 + i % 30), "France")
        for i in range(2000)
    ]
    return tx_frame(rows)


def test_none_is_unchanged(raw):
    out = simulate_scenario(raw, "none", seed=1)
    assert out.equals(raw) and out is not raw


def test_data_drift_multiplies_within_bounds(raw):
    out = simulate_scenario(raw, "data-drift", seed=1)
    q = out["Quantity"].to_numpy() / raw["Quantity"].to_numpy()
    p = out["UnitPrice"].to_numpy() / raw["UnitPrice"].to_numpy()
    # rounding to whole units / cents widens the bounds a little
    assert q.min() >= 1.0 and q.max() <= 3.5 and 1.7 < q.mean() < 2.6
    assert p.min() >= 1.29 and p.max() <= 2.51 and 1.7 < p.mean() < 2.1


def test_model_drift_replaces_ten_percent_with_outliers(raw):
    out = simulate_scenario(raw, "model-drift", seed=1)
    changed = out["Quantity"].to_numpy() != raw["Quantity"].to_numpy()
    assert changed.sum() == 200
    assert set(np.unique(out["Quantity"].to_numpy()[changed])) <= {-9999.0, 99999.0}
    prices = out["UnitPrice"].to_numpy()[changed]
    assert prices.min() >= 0.01 and prices.max() <= 100000


def test_deterministic_for_a_seed(raw):
    a = simulate_scenario(raw, "both", seed=7)
    b = simulate_scenario(raw, "both", seed=7)
    c = simulate_scenario(raw, "both", seed=8)
    assert a.equals(b) and not a.equals(c)


def test_unknown_scenario(raw):
    with pytest.raises(ConfigError, match="unknown scenario 'drift'"):
        simulate_scenario(raw, "drift")
