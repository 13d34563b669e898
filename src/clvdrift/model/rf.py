"""``rf``: the seed's model, StandardScaler + RandomForestRegressor on the seed's features, one cutoff.

The seed's hyper-parameters (:class:`clvdrift.config.RfParams`). The forest is fitted on every core
(n_jobs only changes the speed of fitting, not the trees) and predicts on one: threads add the trees'
outputs in the order they finish, so parallel predictions of the same rows would differ in the last bits
from call to call. The one-core setting is made when the model is built (after ``fit``, or on load for
forests pickled by earlier versions), never by ``predict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from clvdrift.config import RfParams
from clvdrift.errors import ArtifactError
from clvdrift.features import COUNTRY, NUMERIC_FEATURES, CountryEncoder, design_matrix
from clvdrift.model.base import ClvModel, saved_encoder, saved_params

__all__ = ["RfModel"]


class RfModel(ClvModel):
    family: ClassVar[str] = "rf"
    files: ClassVar[tuple[str, ...]] = ("model", "scaler")

    def __init__(self, params: RfParams = RfParams(), *, min_country_customers: int = 10) -> None:
        self.config = params
        self.min_country_customers = min_country_customers
        self.estimator_: Any = None
        self.scaler_: Any = None
        self.encoder_: CountryEncoder | None = None

    def training_cutoffs(self, cutoff: pd.Timestamp, first_day: pd.Timestamp) -> tuple[pd.Timestamp, ...]:
        return (pd.Timestamp(cutoff),)

    @property
    def params(self) -> dict[str, Any]:
        return self.config.model_dump()

    @property
    def encoder(self) -> CountryEncoder:
        if self.encoder_ is None:
            raise ArtifactError("the rf model is not fitted")
        return self.encoder_

    @property
    def input_features(self) -> list[str]:
        return [*NUMERIC_FEATURES, COUNTRY]

    @property
    def feature_columns(self) -> list[str]:
        return [*NUMERIC_FEATURES, *self.encoder.columns]

    def fit(self, features: pd.DataFrame, target: pd.Series) -> RfModel:
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.preprocessing import StandardScaler

        encoder = CountryEncoder(min_customers=self.min_country_customers).fit(features[COUNTRY])
        x = design_matrix(features, encoder)
        scaler = StandardScaler().fit(x)
        forest = RandomForestRegressor(**self.params, n_jobs=-1)
        forest.fit(scaler.transform(x), target.to_numpy(dtype=np.float64))
        forest.set_params(n_jobs=1)  # predict on one core: module docstring
        self.estimator_, self.scaler_, self.encoder_ = forest, scaler, encoder
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        x = self.scaler_.transform(design_matrix(features, self.encoder))
        return np.asarray(self.estimator_.predict(x))

    def state(self) -> dict[str, object]:
        return {"model": self.estimator_, "scaler": self.scaler_}

    def document(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "params": self.params,
            "numeric_features": list(NUMERIC_FEATURES),
            "countries": self.encoder.levels_,
            "min_country_customers": self.encoder.min_customers,
            "input_features": self.input_features,
            "feature_columns": self.feature_columns,
        }

    @classmethod
    def from_state(cls, objects: Mapping[str, object], document: Mapping[str, Any]) -> RfModel:
        model = cls(
            saved_params(RfParams, document), min_country_customers=int(document["min_country_customers"])
        )
        encoder = saved_encoder(document)
        forest = objects["model"]
        if getattr(forest, "n_jobs", 1) != 1:  # forests pickled by earlier versions kept n_jobs=-1
            forest.set_params(n_jobs=1)  # type: ignore[attr-defined]
        model.estimator_, model.scaler_, model.encoder_ = forest, objects["scaler"], encoder
        return model
