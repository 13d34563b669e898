"""Calibration of a column test by a permutation null on the pooled binned counts.

The reference and the current window are both samples. Under "no drift" they come from one
population, so, given the pooled counts of the two on a common grid of cells, every split of the pooled
counts into a reference-sized and a window-sized part is equally likely: the window's counts follow a
multivariate hypergeometric law. Drawing ``trials`` such splits and evaluating the test's statistic on
each gives the statistic's null distribution *conditional on the pooled data*; comparing the observed
statistic on the same grid with it is a valid (exact up to Monte-Carlo error) test for any statistic,
whatever the two sample sizes — the property a resampling of the reference alone lacks when the
reference is not much larger than the window.

A grid (:class:`Grid`) is a list of cells with the reference and current counts in each (integers):
the distinct values of an exact sketch, the grid cells of a histogram sketch (``ValueSketch.discretize``),
the categories, or the test's own bins. Each test has a statistic on a grid (:func:`grid_statistic`)
that is finite on any split: for chi-square it is the two-sample chi-square of homogeneity on the
2 x k table (Evidently's goodness-of-fit statistic is infinite when the reference has a zero cell).
Grids larger than :data:`MAX_CELLS` are coarsened by merging neighbouring cells (:func:`coarsen`); the
test stays valid because the observed statistic is computed on the same coarsened cells.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import rel_entr

__all__ = [
    "MAX_CELLS",
    "Calibration",
    "Grid",
    "GridStatistic",
    "coarsen",
    "draw_splits",
    "grid_statistic",
    "permutation_calibrate",
]

MAX_CELLS = 1024  # cost of a calibration is ~ trials x cells hypergeometric draws (~17 ms at 200 x 1024)
TIE_TOLERANCE = 1e-12  # relative: a null statistic this close to the observed one counts as a tie (>=)

FloatArray = np.ndarray
IntArray = np.ndarray
RowStatistic = Callable[[FloatArray, FloatArray], FloatArray]


@dataclass(frozen=True)
class Grid:
    """Reference and current counts on common cells (int64, same length, every cell non-empty).

    ``positions`` are the sorted cell positions of a numerical grid (``None`` for categories and bins);
    ``empty_cells`` counts cells of the test that hold no value on either side (they matter to PSI's
    zero filling only); ``description`` says what the cells are.
    """

    ref: IntArray
    cur: IntArray
    positions: FloatArray | None
    description: str
    empty_cells: int = 0

    @classmethod
    def from_counts(
        cls,
        ref: FloatArray,
        cur: FloatArray,
        positions: FloatArray | None,
        description: str,
        empty_cells: int = 0,
    ) -> Grid:
        """A grid from aligned counts; cells empty on both sides are dropped (and counted as empty)."""
        r = np.rint(np.asarray(ref, dtype=np.float64)).astype(np.int64)
        c = np.rint(np.asarray(cur, dtype=np.float64)).astype(np.int64)
        keep = (r + c) > 0
        dropped = int(keep.size - np.count_nonzero(keep))
        pos = None if positions is None else np.asarray(positions, dtype=np.float64)[keep]
        return cls(r[keep], c[keep], pos, description, empty_cells + dropped)

    @property
    def cells(self) -> int:
        """Number of cells holding at least one value."""
        return int(self.ref.size)


def coarsen(grid: Grid, max_cells: int = MAX_CELLS) -> Grid:
    """``grid`` with neighbouring cells merged into at most ``max_cells`` groups of similar pooled count.

    A group's position is the pooled-count-weighted mean of its cells' positions. Categories (no
    positions) keep the ``max_cells - 1`` largest cells and merge the rest into one.
    """
    if grid.cells <= max_cells:
        return grid
    pooled = (grid.ref + grid.cur).astype(np.float64)
    if grid.positions is None:
        order = np.argsort(-pooled, kind="stable")
        group = np.full(grid.cells, max_cells - 1, dtype=np.int64)
        group[order[: max_cells - 1]] = np.arange(max_cells - 1)
    else:
        before = np.cumsum(pooled) - pooled
        group = np.floor(before / pooled.sum() * max_cells).astype(np.int64)
    ref = np.bincount(group, weights=grid.ref, minlength=max_cells)
    cur = np.bincount(group, weights=grid.cur, minlength=max_cells)
    pos = None
    if grid.positions is not None:
        weight = np.bincount(group, weights=pooled, minlength=max_cells)
        with np.errstate(invalid="ignore", divide="ignore"):
            pos = np.bincount(group, weights=pooled * grid.positions, minlength=max_cells) / weight
    what = f"{grid.description}, merged into {max_cells} groups of neighbouring cells"
    merged = Grid.from_counts(ref, cur, pos, what)  # unused group numbers are no cells of the test
    return replace(merged, empty_cells=grid.empty_cells)


@dataclass(frozen=True)
class GridStatistic:
    """A test statistic on a grid: ``rows(ref_counts, cur_counts)`` maps ``T x m`` count matrices to
    ``T`` statistics (larger means more drift); ``name`` says which statistic it is."""

    name: str
    rows: RowStatistic

    def observed(self, grid: Grid) -> float:
        """The statistic of the grid's own counts."""
        return float(self.rows(grid.ref[None, :].astype(np.float64), grid.cur[None, :].astype(np.float64))[0])


def _cdf_gap(b: FloatArray, a: FloatArray) -> FloatArray:
    return np.abs(
        np.cumsum(a, axis=1) / a.sum(axis=1, keepdims=True)
        - np.cumsum(b, axis=1) / b.sum(axis=1, keepdims=True)
    )


def _js_rows(p: FloatArray, q: FloatArray) -> FloatArray:
    m = (p + q) / 2.0
    js = rel_entr(p, m).sum(axis=1) + rel_entr(q, m).sum(axis=1)
    return np.sqrt(np.maximum(js, 0.0) / 2.0)


def _fill_zeroes_rows(x: FloatArray) -> FloatArray:
    """Evidently's ``feel_zeroes`` per row: a zero becomes ``min_nonzero / 1e6`` if that minimum is
    ``<= 1e-4``, else ``1e-4``."""
    nz = np.where(x > 0, x, np.inf).min(axis=1, keepdims=True)
    return np.where(nz <= 0.0001, nz / 10**6, 0.0001)


def _psi_rows(p: FloatArray, q: FloatArray, empty_cells: int) -> FloatArray:
    fp, fq = _fill_zeroes_rows(p), _fill_zeroes_rows(q)
    pf, qf = np.where(p > 0, p, fp), np.where(q > 0, q, fq)
    psi = ((pf - qf) * np.log(pf / qf)).sum(axis=1)
    return psi + empty_cells * ((fp - fq) * np.log(fp / fq))[:, 0]


def _chisquare_rows(b: FloatArray, a: FloatArray) -> FloatArray:
    pooled = a + b
    n_a, n_b = a.sum(axis=1, keepdims=True), b.sum(axis=1, keepdims=True)
    total = n_a + n_b
    e_a, e_b = pooled * n_a / total, pooled * n_b / total
    return ((a - e_a) ** 2 / e_a + (b - e_b) ** 2 / e_b).sum(axis=1)


def _z_rows(b: FloatArray, a: FloatArray) -> FloatArray:
    n_a, n_b = a.sum(axis=1), b.sum(axis=1)
    p_ref, p_cur = 1.0 - b[:, 0] / n_b, 1.0 - a[:, 0] / n_a
    big_p = (p_ref * n_b + p_cur * n_a) / (n_a + n_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(p_ref - p_cur) / np.sqrt(big_p * (1 - big_p) * (1.0 / n_b + 1.0 / n_a))
    return np.where(np.isfinite(z), z, 0.0)


def grid_statistic(test: str, grid: Grid, *, norm: float = 1.0) -> GridStatistic:
    """The calibrated statistic of ``test`` on ``grid`` (``norm`` divides the Wasserstein distance).

    ``z`` compares the share of the first cell (the smallest value); ``jensenshannon`` and ``psi`` are
    computed on the grid's cells as Evidently computes them on its bins or values (PSI with its zero
    filling, counting ``grid.empty_cells``).
    """
    if test == "ks":
        return GridStatistic("two-sample KS D on the common grid", lambda b, a: _cdf_gap(b, a).max(axis=1))
    if test == "wasserstein":
        if grid.positions is None:
            raise ValueError("the Wasserstein distance needs a numerical grid")
        deltas = np.diff(grid.positions)
        return GridStatistic(
            "Wasserstein distance on the common grid / max(std_ref, 0.001)",
            lambda b, a: _cdf_gap(b, a)[:, :-1] @ deltas / norm,
        )
    if test == "chisquare":
        return GridStatistic("two-sample chi-square of homogeneity on the 2 x k table", _chisquare_rows)
    if test == "z":
        return GridStatistic("|z| of the two-proportion test (share of values other than the first)", _z_rows)
    if test == "jensenshannon":
        return GridStatistic(
            "Jensen-Shannon distance on the grid cells",
            lambda b, a: _js_rows(b / b.sum(axis=1, keepdims=True), a / a.sum(axis=1, keepdims=True)),
        )
    if test == "psi":
        empty = grid.empty_cells
        return GridStatistic(
            "PSI on the grid cells (Evidently's zero filling)",
            lambda b, a: _psi_rows(b / b.sum(axis=1, keepdims=True), a / a.sum(axis=1, keepdims=True), empty),
        )
    raise ValueError(f"unknown test {test!r}")


@dataclass(frozen=True)
class Calibration:
    """Outcome of a permutation calibration of one column.

    ``statistic`` is the observed value of ``statistic_name`` on the grid, ``threshold`` the
    ``k``-th smallest null statistic with ``k = ceil((1 - alpha)(trials + 1))`` (``inf`` when
    ``k > trials``: then no split can reach the level), ``p_value = (1 + #{null >= observed}) /
    (trials + 1)``; ``drifted`` is ``p_value <= alpha``, which is the same as ``statistic >
    threshold``.
    """

    statistic: float
    statistic_name: str
    threshold: float
    p_value: float
    alpha: float
    trials: int
    drifted: bool
    grid: str

    @property
    def rule(self) -> str:
        """The decision rule, in words."""
        return f"calibrated p_value <= {self.alpha:g} (permutation null, {self.trials} splits)"


def draw_splits(rng: np.random.Generator, pooled: IntArray, n_cur: int, trials: int) -> IntArray:
    """``trials`` random window parts of size ``n_cur`` of the pooled counts (``trials x cells``):
    multivariate hypergeometric draws (numpy's "marginals" method: cost ~ cells, not rows, per draw)."""
    return np.asarray(rng.multivariate_hypergeometric(pooled, n_cur, size=trials, method="marginals"))


def permutation_calibrate(
    grid: Grid, statistic: GridStatistic, *, trials: int, alpha: float, rng: np.random.Generator
) -> Calibration:
    """Calibrate ``statistic`` on ``grid`` with ``trials`` random splits of the pooled counts."""
    pooled = grid.ref + grid.cur
    n_cur = int(grid.cur.sum())
    cur = draw_splits(rng, pooled, n_cur, trials).astype(np.float64)
    ref = pooled[None, :] - cur
    null = np.asarray(statistic.rows(ref, cur), dtype=np.float64)
    null = np.where(np.isnan(null), 0.0, null)
    null.sort()
    observed = statistic.observed(grid)
    obs = 0.0 if math.isnan(observed) else observed
    k = math.ceil((1.0 - alpha) * (trials + 1))
    threshold = float(null[k - 1]) if k <= trials else math.inf
    p = (1.0 + float(np.count_nonzero(null >= obs - TIE_TOLERANCE * max(1.0, abs(obs))))) / (trials + 1.0)
    return Calibration(
        observed, statistic.name, threshold, p, alpha, trials, bool(p <= alpha), grid.description
    )
