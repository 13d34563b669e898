"""Model quality for CLV: regression error and ranking quality, always next to a naive baseline.

- ``r2``, ``mae``, ``rmse``: the usual regression numbers.
- ``spearman``: rank correlation of predicted and actual value (who is worth more).
- ``gini_normalized``: Gini of actual value ordered by prediction ÷ Gini ordered by the actual value
  itself (1 = perfect ranking, 0 = random).
- ``top10_capture``: share of the actual total held by the 10% of customers predicted highest.
- ``total_ratio``: predicted total ÷ actual total (1 = unbiased in aggregate).

MAPE is left out on purpose: many customers have an actual value of 0.
"""

from __future__ import annotations

import math

import numpy as np


def _gini(actual: np.ndarray, order_by: np.ndarray) -> float:
    n = len(actual)
    order = np.argsort(-order_by, kind="stable")
    score, value = order_by[order], actual[order]
    # tied scores carry no order: give each member of a tie its group's mean (the expected curve over
    # every tie order), so a score with many equal values (e.g. zeros) is neither helped nor hurt
    starts = np.flatnonzero(np.r_[True, score[1:] != score[:-1]])
    sizes = np.diff(np.r_[starts, n])
    value = np.repeat(np.add.reduceat(value, starts) / sizes, sizes)
    cum = np.cumsum(value) / actual.sum()
    return float(cum.sum() / n - (n + 1) / (2 * n))


def gini_normalized(actual: np.ndarray, predicted: np.ndarray) -> float:
    actual = np.asarray(actual, dtype=np.float64)
    if len(actual) < 2 or actual.sum() == 0:
        return math.nan  # one customer (or no revenue) has no ranking to measure
    perfect = _gini(actual, actual)
    if perfect == 0:
        return math.nan  # every customer worth the same: no ranking to measure
    return _gini(actual, np.asarray(predicted, dtype=np.float64)) / perfect


def top_share_capture(actual: np.ndarray, predicted: np.ndarray, share: float = 0.10) -> float:
    actual = np.asarray(actual, dtype=np.float64)
    total = actual.sum()
    if len(actual) == 0 or total == 0:
        return math.nan
    k = max(1, math.ceil(share * len(actual)))
    top = np.lexsort((np.arange(len(actual)), -np.asarray(predicted, dtype=np.float64)))[:k]
    return float(actual[top].sum() / total)


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The numbers in the module docstring, rounded to 6 significant places; NaN when undefined."""
    from scipy.stats import spearmanr

    y = np.asarray(actual, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if len(y) == 0:
        return {
            k: math.nan
            for k in ("r2", "mae", "rmse", "spearman", "gini_normalized", "top10_capture", "total_ratio")
        }
    err = p - y
    ss_tot = float(((y - y.mean()) ** 2).sum())
    constant = np.all(y == y[0]) or np.all(p == p[0])
    out = {
        "r2": 1 - float((err**2).sum()) / ss_tot if ss_tot > 0 else math.nan,
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "spearman": math.nan if constant else float(spearmanr(y, p).statistic),
        "gini_normalized": gini_normalized(y, p),
        "top10_capture": top_share_capture(y, p),
        "total_ratio": float(p.sum() / y.sum()) if y.sum() != 0 else math.nan,
    }
    return {k: (float(f"{v:.6g}") if math.isfinite(v) else math.nan) for k, v in out.items()}


def compare_to_baseline(actual: np.ndarray, predicted: np.ndarray, baseline: np.ndarray) -> dict[str, object]:
    """Model and baseline metrics on the same customers, and whether the model beats the baseline
    on the ranking metrics (Spearman and normalized Gini)."""
    model = regression_metrics(actual, predicted)
    base = regression_metrics(actual, baseline)
    beats = all(
        math.isfinite(model[k]) and (not math.isfinite(base[k]) or model[k] > base[k])
        for k in ("spearman", "gini_normalized")
    )
    return {"customers": len(actual), "model": model, "baseline": base, "beats_baseline": beats}
