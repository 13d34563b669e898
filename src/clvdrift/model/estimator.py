"""The CLV model: the seed's StandardScaler + RandomForestRegressor over the design matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clvdrift.config import TrainConfig
from clvdrift.features import NUMERIC_FEATURES, CountryEncoder, design_matrix

# The seed's hyper-parameters (fidelity first). The forest is fitted on every core (n_jobs only changes
# the speed of fitting, not the trees) and predicts on one: threads add the trees' outputs in the order
# they finish, so parallel predictions of the same rows differ in the last bits from call to call.
DEFAULT_PARAMS: dict[str, Any] = {
    "n_estimators": 100,
    "max_depth": 10,
    "min_samples_split": 10,
    "min_samples_leaf": 5,
    "random_state": 42,
}


@dataclass(frozen=True)
class ClvModel:
    """A fitted model with everything needed to score raw customer features."""

    estimator: Any  # sklearn RandomForestRegressor
    scaler: Any  # sklearn StandardScaler
    encoder: CountryEncoder

    @property
    def feature_columns(self) -> list[str]:
        return [*NUMERIC_FEATURES, *self.encoder.columns]

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Predicted CLV for each row of ``features`` (numeric features + ``Country``), bit-identical
        from call to call (the trees are summed in one order)."""
        if getattr(self.estimator, "n_jobs", 1) != 1:  # also models pickled before this rule
            self.estimator.set_params(n_jobs=1)
        return np.asarray(
            self.estimator.predict(self.scaler.transform(design_matrix(features, self.encoder)))
        )


def fit_model(
    features: pd.DataFrame,
    target: pd.Series,
    *,
    params: dict[str, Any] | None = None,
    min_country_customers: int = TrainConfig().min_country_customers,
) -> ClvModel:
    """Fit the encoder on ``features.Country``, the scaler and the forest on the design matrix."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.preprocessing import StandardScaler

    encoder = CountryEncoder(min_customers=min_country_customers).fit(features["Country"])
    x = design_matrix(features, encoder)
    scaler = StandardScaler().fit(x)
    forest = RandomForestRegressor(**{**DEFAULT_PARAMS, **(params or {})}, n_jobs=-1)
    forest.fit(scaler.transform(x), target.to_numpy(dtype=np.float64))
    forest.set_params(n_jobs=1)  # predict on one core: see DEFAULT_PARAMS
    return ClvModel(estimator=forest, scaler=scaler, encoder=encoder)
