"""Drift scenarios (the operations guide's ``create_drift_raw_data.py``), applied to raw transactions.

- ``none``: the transactions unchanged.
- ``data-drift``: every row's Quantity × U(1.5, 3) (rounded to a whole number) and UnitPrice ×
  U(1.3, 2.5): customers buy more, at higher prices.
- ``model-drift``: 10% of rows, chosen at random, become extreme outliers: Quantity −9999 or 99999,
  UnitPrice U(0.01, 100000): the relation the model learned no longer holds.
- ``both``: data drift, then model drift.

Deterministic for a given seed (NumPy ``default_rng(seed)``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clvdrift.config import SCENARIO_SEED
from clvdrift.data import schema
from clvdrift.errors import ConfigError

SCENARIOS = ("none", "data-drift", "model-drift", "both")
OUTLIER_SHARE = 0.10


def simulate_scenario(
    transactions: pd.DataFrame, scenario: str, *, seed: int = SCENARIO_SEED
) -> pd.DataFrame:
    """Return a copy of ``transactions`` changed as ``scenario`` says (see module docstring)."""
    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
    rng = np.random.default_rng(seed)
    out = transactions.copy()
    qty = out[schema.QUANTITY].to_numpy(dtype=np.float64).copy()
    price = out[schema.UNIT_PRICE].to_numpy(dtype=np.float64).copy()
    n = len(out)
    if scenario in ("data-drift", "both"):
        qty = np.round(qty * rng.uniform(1.5, 3.0, n))
        price = np.round(price * rng.uniform(1.3, 2.5, n), 2)
    if scenario in ("model-drift", "both"):
        rows = rng.choice(n, size=round(n * OUTLIER_SHARE), replace=False)
        qty[rows] = rng.choice(np.array([-9999.0, 99999.0]), size=len(rows))
        price[rows] = np.round(rng.uniform(0.01, 100000.0, len(rows)), 2)
    out[schema.QUANTITY] = qty
    out[schema.UNIT_PRICE] = price
    return out
