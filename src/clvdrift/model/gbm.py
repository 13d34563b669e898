"""``gbm``, the default family: gradient-boosted trees with a Poisson loss, trained on stacked cutoffs.

scikit-learn's ``HistGradientBoostingRegressor`` (no new dependency; missing values and the country
handled natively). Training rows are the customers of every cutoff ``C, C − 7 days, …`` back while a
cutoff has 90 days of history (:class:`clvdrift.config.GbmParams`), each with the revenue of the H days
after its cutoff as target, so the model learns from many windows instead of one.

Two boosted models are fitted on those rows and their predictions averaged (docs/model.md has the
measurements that chose this):

- ``whole``: the seed's whole-history features (Recency, Frequency, Monetary, …) and the country;
- ``full``: those plus the windowed revenue and orders, tenure, days between orders and trend, and —
  when the training cutoffs span a year (``seasonal_min_span_days``) — the calendar position of the
  target window and last year's revenue in the same season.

On the bundled file the ``whole`` view ranks customers better and the ``full`` view errs less in money;
their average is ahead of either, and of persistence, on every metric of the time split.

A third prediction joins the average (``GbmParams.btyd``): the buy-till-you-die expected revenue of the
next H days, BG/NBD expected orders × Gamma-Gamma expected order value (:mod:`clvdrift.model.btyd`),
fitted on the customers of the newest training cutoff and scaled so that its total over the training
rows equals theirs. A model of how often and how long a customer keeps buying, it smooths the
boosters' ranking of the many customers with few orders.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from clvdrift.config import GbmParams
from clvdrift.errors import ArtifactError, DataError
from clvdrift.features import (
    COUNTRY,
    CUTOFF_COLUMN,
    HISTORY_FEATURES,
    NUMERIC_FEATURES,
    SEASON_FEATURES,
    CountryEncoder,
    stacked_cutoffs,
)
from clvdrift.model.base import ClvModel, saved_encoder, saved_params
from clvdrift.model.btyd import BTYD_INPUTS, Btyd
from clvdrift.model.fit_worker import active_worker

__all__ = ["GbmModel"]

PARALLEL_MIN_ROWS = 100_000
"""Below this many rows the boosters fit on one OpenMP thread. Per tree the work is small and OpenMP's
threads wait for each other at every step: on 2 cores shared with other processes (a test suite,
concurrent monitors, an Airflow worker) a 6,000-row fit took 20 s on two threads and 3 s on one.
Predictions always run one OpenMP thread per chunk (:func:`_predict_boosters`): a one-row prediction on
OpenMP's pool burned two cores for nothing, and a process that forks after predicting (a worker pool, a
test's processes) could hang in that pool in the child.

Below this many rows the two views are also fitted at once, one Python thread each (scikit-learn's
histogram loops release the GIL): on the bundled file's 75,725 stacked rows both took 1.4–1.6 s this way
against 2.2 s one after the other on an idle 2-core machine, and about as long as one after the other
while another process kept a core busy. Each booster is the same either way (one OpenMP thread, fixed
seed).

Inside :func:`clvdrift.model.fit_worker.booster_worker` (a replay: dozens of fits in a row) the ``full``
booster is fitted in a worker process instead and the ``whole`` one and BTYD here meanwhile, out of each
other's GIL: 0.72-0.77 s a fit against 1.0-1.1 s on threads at 32,000 rows, the same boosters."""
WHOLE = [*NUMERIC_FEATURES]
FULL = [*NUMERIC_FEATURES, *HISTORY_FEATURES]
_BOOSTER_PARAMS = ("learning_rate", "max_iter", "max_leaf_nodes", "min_samples_leaf", "l2_regularization")


CHUNKED_MIN_ROWS = 4096
"""From this many rows a prediction is split into one chunk per core (at most 4), scored on Python
threads, each tree loop on one OpenMP thread (scikit-learn's loop releases the GIL): the cores are used
without OpenMP's thread pool (see :data:`PARALLEL_MIN_ROWS`). Each row's prediction is the same."""
_POOL: Any = None
_OPENMP_FITS = threading.Lock()


def _forget_pool() -> None:
    """In a forked child: the parent's pool has no threads there (its work would never run)."""
    global _POOL
    _POOL = None


os.register_at_fork(after_in_child=_forget_pool)


def _one_thread(booster: Any) -> Any:
    """``booster`` with its bin mapper on one OpenMP thread: scikit-learn stores the thread count of the
    fit (all cores from :data:`PARALLEL_MIN_ROWS` rows, on whatever machine fitted it) and binning at
    prediction uses it as is, whatever ``threadpool_limits`` says (found by an adversarial check: a model
    fitted on 100,000 rows made a forked child hang)."""
    mapper = getattr(booster, "_bin_mapper", None)
    if mapper is not None:
        mapper.n_threads = 1
    return booster


def _binned_raw(booster: Any, matrix: np.ndarray) -> np.ndarray:
    """``booster._raw_predict(matrix, n_threads=1)`` of a fitted ``HistGradientBoostingRegressor``, bit for
    bit, through the binned data scikit-learn fits on (about 1.5x faster than its raw-data loop): a
    value goes left at a node when ``x <= threshold``, which is when its bin is at most the node's bin
    threshold, since every threshold is a bin's upper edge; a missing or unknown value falls in the missing
    bin and goes where the node sends missing values. The leaves are added tree by tree in scikit-learn's
    order. ``tests/model/test_compiled.py`` checks equality on NaN, thresholds, extremes and unknown
    categories."""
    binned = booster._bin_mapper.transform(booster._preprocess_X(matrix, reset=False))
    missing_bin = booster._bin_mapper.missing_values_bin_idx_
    raw = np.zeros(len(binned), dtype=np.float64) + booster._baseline_prediction.ravel()
    for (tree,) in booster._predictors:
        raw += tree.predict_binned(binned, missing_bin, 1)
    return raw


def _predict_boosters(pairs: list[tuple[Any, np.ndarray]]) -> list[np.ndarray]:
    """Each ``(booster, matrix)``'s ``booster.predict(matrix)`` (the same numbers), all scored together:
    from :data:`CHUNKED_MIN_ROWS` rows every matrix is cut into one chunk per core and the chunks of all
    boosters run on one thread pool; below it, on the caller's thread."""
    from concurrent.futures import ThreadPoolExecutor

    global _POOL
    rows = len(pairs[0][1])
    workers = max(1, min(4, os.cpu_count() or 1))
    chunks = workers if rows >= CHUNKED_MIN_ROWS else 1
    tasks = [(booster, part) for booster, matrix in pairs for part in np.array_split(matrix, chunks)]
    if chunks == 1:
        raws = [_binned_raw(booster, part) for booster, part in tasks]
    else:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gbm-predict")
        raws = list(_POOL.map(lambda task: _binned_raw(*task), tasks))
    return [
        np.asarray(booster._loss.link.inverse(np.concatenate(raws[k * chunks : (k + 1) * chunks])))
        for k, (booster, _) in enumerate(pairs)
    ]


def _threads(rows: int) -> Any:
    """One OpenMP thread below :data:`PARALLEL_MIN_ROWS` rows, else the library's default."""
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp") if rows < PARALLEL_MIN_ROWS else nullcontext()


class GbmModel(ClvModel):
    family: ClassVar[str] = "gbm"
    files: ClassVar[tuple[str, ...]] = ("model",)

    def __init__(
        self, params: GbmParams = GbmParams(), *, min_country_customers: int = 10, horizon_days: int = 90
    ) -> None:
        self.config = params
        self.min_country_customers = min_country_customers
        self.horizon_days = horizon_days
        self.btyd_: Btyd | None = None
        self.btyd_scale_: float = 0.0
        self.views_: dict[str, list[str]] = {}
        self.boosters_: dict[str, Any] = {}
        self.encoder_: CountryEncoder | None = None
        self.seasonal_: bool = False
        self.compiled_: dict[str, Any] | None = None  # built on first use by predict_columns, not saved
        self._position: dict[str, int] | None = None

    def training_cutoffs(self, cutoff: pd.Timestamp, first_day: pd.Timestamp) -> tuple[pd.Timestamp, ...]:
        c = self.config
        return stacked_cutoffs(
            cutoff,
            first_day,
            step_days=c.step_days,
            min_history_days=c.min_history_days,
            max_cutoffs=c.max_cutoffs,
        )

    @property
    def params(self) -> dict[str, Any]:
        return self.config.model_dump()

    @property
    def encoder(self) -> CountryEncoder:
        if self.encoder_ is None:
            raise ArtifactError("the gbm model is not fitted")
        return self.encoder_

    @property
    def input_features(self) -> list[str]:
        columns = dict.fromkeys(c for view in self.views_.values() for c in view)
        if self.btyd_ is not None:
            columns.update(dict.fromkeys(BTYD_INPUTS))
        return [*columns, COUNTRY]

    def _matrix(self, features: pd.DataFrame, columns: list[str]) -> np.ndarray:
        missing = [c for c in (*columns, COUNTRY) if c not in features.columns]
        if missing:
            raise DataError(f"features are missing column(s) {missing} the gbm model reads")
        country = self._country_codes(features[COUNTRY].to_numpy(dtype=object))
        return np.column_stack([features[columns].to_numpy(dtype=np.float64), country])

    def _country_codes(self, values: Any) -> np.ndarray:
        """Each country's position among the levels (as its text), the unknown ones after them: the
        booster's categorical column, for training and every prediction alike."""
        if self._position is None:
            self._position = {c: i for i, c in enumerate(self.encoder.levels_)}
        position, other = self._position, len(self.encoder.levels_)
        return np.fromiter((position.get(str(c), other) for c in values), dtype=np.float64, count=len(values))

    def fit(self, features: pd.DataFrame, target: pd.Series) -> GbmModel:
        from sklearn.ensemble import HistGradientBoostingRegressor

        y = target.to_numpy(dtype=np.float64)
        if (y < 0).any():
            raise DataError("the gbm model's Poisson loss needs a target ≥ 0 (revenue after returns?)")
        self.encoder_ = CountryEncoder(min_customers=self.min_country_customers).fit(features[COUNTRY])
        span = 0
        if CUTOFF_COLUMN in features.columns and len(features):
            days = pd.to_datetime(features[CUTOFF_COLUMN])
            span = int((days.max() - days.min()).days)
        self.seasonal_ = span >= self.config.seasonal_min_span_days
        wanted = {"whole": WHOLE, "full": FULL + (list(SEASON_FEATURES) if self.seasonal_ else [])}
        # a feature missing on every training row says nothing and cannot be binned (e.g. last year's revenue
        # under a lookback window shorter than a year): left out of the view, which the document records
        self.views_ = {
            name: [c for c in columns if c not in features.columns or features[c].notna().any()]
            for name, columns in wanted.items()
        }
        booster = {k: getattr(self.config, k) for k in _BOOSTER_PARAMS}
        # a small history (a few hundred rows) would not split at all with leaves of 100: cap the leaf
        # size at 1/40 of the rows (at least 5)
        booster["min_samples_leaf"] = min(self.config.min_samples_leaf, max(5, len(y) // 40))
        self.compiled_, self._position = None, None

        def estimator(columns: list[str]) -> dict[str, Any]:
            return {
                "loss": "poisson",
                "categorical_features": [len(columns)],
                "early_stopping": False,
                "random_state": self.config.random_state,
                **booster,
            }

        def fit_view(columns: list[str]) -> Any:
            model = HistGradientBoostingRegressor(**estimator(columns))
            with _threads(len(y)):  # in the thread that fits: OpenMP's thread count is per thread
                return _one_thread(model.fit(self._matrix(features, columns), y))

        views = list(self.views_.values())
        worker = active_worker()
        if worker is not None and len(y) < PARALLEL_MIN_ROWS:
            # the view with the most columns in the worker process; the others and BTYD here meanwhile
            last = views[-1]
            remote = worker.fit(estimator(last), self._matrix(features, last), y)
            fitted = [fit_view(columns) for columns in views[:-1]]
            self._fit_btyd(features, y)
            booster_fitted = worker.fitted(remote)
            fitted.append(fit_view(last) if booster_fitted is None else _one_thread(booster_fitted))
        elif len(y) < PARALLEL_MIN_ROWS and (os.cpu_count() or 1) > 1:
            # each view on a thread of its own, each on one OpenMP thread (see PARALLEL_MIN_ROWS)
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=len(views), thread_name_prefix="gbm-fit") as pool:
                futures = [pool.submit(fit_view, columns) for columns in views]
                self._fit_btyd(features, y)  # on this thread meanwhile
                fitted = [future.result() for future in futures]
        else:  # each fit uses every core through OpenMP: one such fit at a time in this process (threads
            # fitting at once, e.g. a replay's policies, would make OpenMP's threads wait for each other)
            with _OPENMP_FITS:
                fitted = [fit_view(columns) for columns in views]
            self._fit_btyd(features, y)
        self.boosters_ = dict(zip(self.views_, fitted, strict=True))
        return self

    def _fit_btyd(self, features: pd.DataFrame, y: np.ndarray) -> None:
        """The BG/NBD and Gamma-Gamma of the newest cutoff's rows (all rows without a cutoff column): they
        read only lines before that cutoff. Their expected revenue is scaled by Σ target / Σ expected over
        every training row. Not used (``btyd_`` None) when disabled or when the fit is impossible."""
        self.btyd_, self.btyd_scale_ = None, 0.0
        if not self.config.btyd or not all(c in features.columns for c in BTYD_INPUTS):
            return
        newest = np.ones(len(features), dtype=bool)
        if CUTOFF_COLUMN in features.columns and len(features):
            days = pd.to_datetime(features[CUTOFF_COLUMN]).to_numpy()
            newest = days == days.max()
        fitted = Btyd.fit({c: features[c].to_numpy()[newest] for c in BTYD_INPUTS})
        if fitted is None:
            return
        expected = fitted.expected_revenue(
            {c: features[c].to_numpy() for c in BTYD_INPUTS}, self.horizon_days
        )
        total = float(expected.sum())
        if np.isfinite(total) and total > 0 and y.sum() > 0:
            self.btyd_, self.btyd_scale_ = fitted, float(y.sum()) / total

    def _average(self, parts: list[np.ndarray], columns: Mapping[str, Any]) -> np.ndarray:
        """The mean of the boosters' predictions and, when fitted, the scaled BTYD expected revenue."""
        if self.btyd_ is not None:
            expected = self.btyd_.expected_revenue(columns, self.horizon_days)
            parts = [*parts, self.btyd_scale_ * expected]
        return np.asarray(np.mean(parts, axis=0), dtype=np.float64)

    def predict_columns(self, columns: Mapping[str, Any]) -> np.ndarray:
        """:meth:`predict` without a DataFrame: each view's matrix is built from the columns; up to
        :data:`COMPILED_MAX_ROWS` rows the boosters compiled to numpy score it
        (:mod:`clvdrift.model.compiled`, equal to scikit-learn's predictions), more rows scikit-learn."""
        from clvdrift.model.compiled import COMPILED_MAX_ROWS, CompiledBooster

        if not self.boosters_:
            raise ArtifactError("the gbm model is not fitted")
        n = len(columns[COUNTRY])
        country = self._country_codes(columns[COUNTRY])
        matrices = {}
        for name, cols in self.views_.items():
            matrix = np.empty((n, len(cols) + 1), dtype=np.float64)
            for j, c in enumerate(cols):
                matrix[:, j] = columns[c]
            matrix[:, -1] = country
            matrices[name] = matrix
        if n > COMPILED_MAX_ROWS:
            return self._predict_matrices(matrices, columns)
        if self.compiled_ is None:
            self.compiled_ = {name: CompiledBooster(b) for name, b in self.boosters_.items()}
        parts = [self.compiled_[name].predict(matrix) for name, matrix in matrices.items()]
        return self._average(parts, columns)

    def _predict_matrices(self, matrices: Mapping[str, np.ndarray], columns: Mapping[str, Any]) -> np.ndarray:
        """The average of the boosters on each view's matrix (see :func:`_predict_boosters`) and of the
        BTYD expected revenue of ``columns``."""
        parts = _predict_boosters([(self.boosters_[name], m) for name, m in matrices.items()])
        return self._average(parts, columns)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        if not self.boosters_:
            raise ArtifactError("the gbm model is not fitted")
        matrices = {name: self._matrix(features, cols) for name, cols in self.views_.items()}
        if self.btyd_ is None:
            return self._predict_matrices(matrices, {})
        missing = [c for c in BTYD_INPUTS if c not in features.columns]
        if missing:
            raise DataError(f"features are missing column(s) {missing} the gbm model reads")
        return self._predict_matrices(matrices, {c: features[c].to_numpy() for c in BTYD_INPUTS})

    def state(self) -> dict[str, object]:
        return {"model": dict(self.boosters_)}

    def document(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "params": self.params,
            "views": self.views_,
            "seasonal": self.seasonal_,
            "horizon_days": self.horizon_days,
            "btyd": None if self.btyd_ is None else {**self.btyd_.to_dict(), "scale": self.btyd_scale_},
            "countries": self.encoder.levels_,
            "min_country_customers": self.encoder.min_customers,
            "input_features": self.input_features,
            "feature_columns": self.feature_columns,
        }

    @classmethod
    def from_state(cls, objects: Mapping[str, object], document: Mapping[str, Any]) -> GbmModel:
        model = cls(
            saved_params(GbmParams, document),
            min_country_customers=int(document["min_country_customers"]),
            horizon_days=int(document.get("horizon_days", 90)),
        )
        encoder = saved_encoder(document)
        boosters = objects["model"]
        views = {str(k): [str(c) for c in v] for k, v in dict(document["views"]).items()}
        if not isinstance(boosters, dict) or set(boosters) != set(views):
            raise ArtifactError("the gbm model file does not hold the boosters its document names")
        model.encoder_, model.views_ = encoder, views
        model.boosters_ = {name: _one_thread(b) for name, b in boosters.items()}
        model.seasonal_ = bool(document.get("seasonal", False))
        btyd = document.get("btyd")  # absent from the files of earlier versions: the boosters only
        if btyd:
            model.btyd_, model.btyd_scale_ = Btyd.from_dict(btyd), float(btyd["scale"])
        return model
