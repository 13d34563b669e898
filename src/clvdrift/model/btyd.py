"""Buy-till-you-die: the BG/NBD model of repeat orders (Fader, Hardie & Lee 2005, "Counting your
customers the easy way") and the Gamma-Gamma model of order value (Fader, Hardie & Lee 2005, "RFM and
CLV"), fitted by maximum likelihood on one cutoff's customers; their product is each customer's expected
revenue over the next H days.

Per customer, from the features at a snapshot (every one reads lines strictly before it), in weeks:
x = NumOrders − 1 repeat orders, T = TenureDays (first purchase to the snapshot) and t_x = T − Recency
(first to last purchase; 0 when x = 0). Gamma-Gamma: NumOrders orders of mean value Monetary / NumOrders
(customers with a positive one). Both are fitted on log-parameters with L-BFGS-B.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["BTYD_INPUTS", "Btyd"]

BTYD_INPUTS = ("NumOrders", "TenureDays", "Recency", "Monetary")
WEEK = 7.0
_LOG_BOUND = 7.0  # every parameter within e^-7 … e^7 (time in weeks, order values in units of their median)
_LOG_Q_MIN = float(np.log(1.01))  # Gamma-Gamma q > 1: the mean order value has a finite population mean
_PENALTY = 1e10  # the negative log-likelihood where it is not finite


def _summary(columns: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
    """(x, t_x, T, orders, mean order value) from the feature columns of :data:`BTYD_INPUTS`."""
    orders = np.asarray(columns["NumOrders"], dtype=np.float64)
    T = np.maximum(np.nan_to_num(np.asarray(columns["TenureDays"], dtype=np.float64)), 0.0) / WEEK
    recency = np.nan_to_num(np.asarray(columns["Recency"], dtype=np.float64)) / WEEK
    x = np.maximum(np.nan_to_num(orders) - 1, 0.0)
    t_x = np.where(x > 0, np.clip(T - recency, 0.0, T), 0.0)
    money = np.nan_to_num(np.asarray(columns["Monetary"], dtype=np.float64))
    value = np.divide(money, orders, where=orders > 0, out=np.zeros(len(orders)))
    return x, t_x, T, np.nan_to_num(orders), np.maximum(value, 0.0)


def _bgnbd_nll(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> float:
    """Mean negative log-likelihood of the BG/NBD (FHL 2005, eq. 6)."""
    from scipy.special import gammaln

    r, alpha, a, b = np.exp(log_params)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x), -np.inf
        )
    value = -float(np.mean(a1 + a2 + np.logaddexp(a3, a4)))
    return value if np.isfinite(value) else _PENALTY


def _gamma_gamma_nll(log_params: np.ndarray, n: np.ndarray, m: np.ndarray) -> float:
    """Mean negative log-likelihood of the Gamma-Gamma spend model (n orders of mean value m)."""
    from scipy.special import gammaln

    p, q, v = np.exp(log_params)
    ll = (
        gammaln(p * n + q)
        - gammaln(p * n)
        - gammaln(q)
        + q * np.log(v)
        + (p * n - 1) * np.log(m)
        + p * n * np.log(n)
        - (p * n + q) * np.log(n * m + v)
    )
    value = -float(np.mean(ll))
    return value if np.isfinite(value) else _PENALTY


@dataclass(frozen=True)
class Btyd:
    """A fitted BG/NBD (r, alpha, a, b; time in weeks) and Gamma-Gamma (p, q, v)."""

    r: float
    alpha: float
    a: float
    b: float
    p: float
    q: float
    v: float

    @classmethod
    def fit(cls, columns: Mapping[str, Any]) -> Btyd | None:
        """Maximum likelihood on the customers of ``columns`` (one cutoff's features); ``None`` when there
        are too few to fit or a fit fails."""
        from scipy.optimize import minimize

        x, t_x, T, orders, value = _summary(columns)
        known = T > 0
        spend = (orders > 0) & (value > 0)
        if known.sum() < 20 or spend.sum() < 20 or not (x[known] > 0).any():
            return None
        x, t_x, T = x[known], t_x[known], T[known]
        start = np.log([0.5, max(float(np.mean(T)), 1.0), 0.5, 2.0])
        bounds = [(-_LOG_BOUND, _LOG_BOUND)] * 4
        bg = minimize(_bgnbd_nll, start, args=(x, t_x, T), method="L-BFGS-B", bounds=bounds)
        # Gamma-Gamma on order values in units of their median: the fit is the same in any currency (its
        # v scales with the values, p and q do not), and v stays inside its bounds
        n, m = orders[spend], value[spend]
        unit = float(np.median(m))
        gg_bounds = [(-_LOG_BOUND, _LOG_BOUND), (_LOG_Q_MIN, _LOG_BOUND), (-_LOG_BOUND, _LOG_BOUND)]
        gg = minimize(
            _gamma_gamma_nll, np.log([1.0, 2.0, 1.0]), args=(n, m / unit), method="L-BFGS-B", bounds=gg_bounds
        )
        # no fit: one that did not converge or ended on the penalty of a non-finite likelihood, or whose
        # r, alpha, p or v sits on a bound (a, b and q may: no drop-out at all, b → ∞, and order values
        # nearly alike, q → ∞, are limits of the models; q ≥ 1.01 keeps the mean order value finite)
        pinned = np.abs(np.r_[bg.x[:2], gg.x[0], gg.x[2]]) >= _LOG_BOUND - 1e-3
        if not (bg.success and gg.success) or max(bg.fun, gg.fun) >= _PENALTY or pinned.any():
            return None
        params = np.exp(np.r_[bg.x, gg.x]) * np.array([1, 1, 1, 1, 1, 1, unit])
        if not np.all(np.isfinite(params)):
            return None
        return cls(*(float(v) for v in params))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Btyd:
        return cls(**{k: float(data[k]) for k in ("r", "alpha", "a", "b", "p", "q", "v")})

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            log_odds = (
                np.log(a)
                - np.log(np.maximum(b + x - 1, 1e-12))
                + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
            )
            return np.where(x > 0, 1.0 / (1.0 + np.exp(log_odds)), 1.0)

    def expected_orders(self, weeks: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """E[orders in the next ``weeks`` | x, t_x, T] (FHL 2005, eq. 10)."""
        from scipy.special import hyp2f1

        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            z = weeks / (alpha + T + weeks)
            body = 1.0 - np.exp((r + x) * np.log((alpha + T) / (alpha + T + weeks))) * hyp2f1(
                r + x, b + x, a + b + x - 1, z
            )
            alive = self.p_alive(x, t_x, T)
            out = (a + b + x - 1) / (a - 1) * body * alive
            # not finite (a = 1, an overflow): the alive customer's expected rate × time
            out = np.where(np.isfinite(out), out, (r + x) / (alpha + T) * weeks * alive)
        return np.maximum(out, 0.0)

    def expected_value(self, orders: np.ndarray, value: np.ndarray) -> np.ndarray:
        """E[mean order value | orders, their mean value] (Gamma-Gamma); the population mean for none."""
        p, q, v = self.p, self.q, self.v
        seen = value[orders > 0]
        population = p * v / (q - 1) if q > 1 else float(seen.mean()) if len(seen) else 0.0
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            own = (v + orders * value) * p / (p * orders + q - 1)
        usable = (orders > 0) & (p * orders + q - 1 > 0) & np.isfinite(own)
        return np.maximum(np.where(usable, own, population), 0.0)

    def expected_revenue(self, columns: Mapping[str, Any], horizon_days: int) -> np.ndarray:
        """Expected orders over the next ``horizon_days`` × expected order value, per customer."""
        x, t_x, T, orders, value = _summary(columns)
        return self.expected_orders(horizon_days / WEEK, x, t_x, T) * self.expected_value(orders, value)
