"""The model-family seam: :class:`ClvModel` (what every family implements) and :class:`TrainingRecord`
(the typed training facts a registered version carries).

A family declares its name, its hyper-parameters (a frozen pydantic model in
:class:`clvdrift.config.TrainConfig`), the cutoffs it trains on (one for ``rf``, stacked past cutoffs for
``gbm``) and the input features it reads. ``fit`` learns from customer features and a target and
returns the model; ``predict`` never changes the model. A model is saved as named objects (each pickled
into its own checksummed artifact file) plus a JSON document (``features_<version>.json``) that names the
family, so :func:`clvdrift.model.artifacts.load_model` rebuilds any family; a document without a family
is an ``rf`` model of an earlier version.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel

from clvdrift.config import TrainConfig
from clvdrift.errors import ArtifactError, ConfigError
from clvdrift.features import CountryEncoder
from clvdrift.jsonable import dataclass_dict

__all__ = ["ClvModel", "TrainingRecord", "family_class", "new_model", "saved_encoder", "saved_params"]

P = TypeVar("P", bound=BaseModel)


class ClvModel(ABC):
    """A CLV model family: configuration in ``__init__``, learned state set by :meth:`fit`."""

    family: ClassVar[str]
    files: ClassVar[tuple[str, ...]]
    """The artifact names of the pickled objects (``model`` always; ``rf`` adds the seed's ``scaler``)."""

    @abstractmethod
    def training_cutoffs(self, cutoff: pd.Timestamp, first_day: pd.Timestamp) -> tuple[pd.Timestamp, ...]:
        """The cutoffs whose customers (features before it, revenue of the H days after) are training
        rows for a model at ``cutoff``, newest first; ``cutoff`` always first."""

    @abstractmethod
    def fit(self, features: pd.DataFrame, target: pd.Series) -> ClvModel:
        """Learn from customer features (rows of :func:`clvdrift.features.history_features`, possibly
        stacked over several cutoffs) and their target; returns ``self``."""

    @abstractmethod
    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Predicted revenue over the next H days per row of ``features``; never changes the model and
        is bit-identical from call to call."""

    @property
    @abstractmethod
    def input_features(self) -> list[str]:
        """The feature columns :meth:`predict` reads (after :meth:`fit`)."""

    @property
    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The family's hyper-parameters, as configured."""

    @abstractmethod
    def state(self) -> dict[str, object]:
        """The fitted objects to pickle, one artifact each, named as in :attr:`files`."""

    @abstractmethod
    def document(self) -> dict[str, Any]:
        """The JSON document saved as ``features_<version>.json`` (with ``family``)."""

    @classmethod
    @abstractmethod
    def from_state(cls, objects: Mapping[str, object], document: Mapping[str, Any]) -> ClvModel:
        """The model :meth:`state` and :meth:`document` describe."""

    @property
    def feature_columns(self) -> list[str]:
        """The columns of the matrix the estimator sees (for the record)."""
        return self.input_features

    def predict_columns(self, columns: Mapping[str, Any]) -> np.ndarray:
        """:meth:`predict` of features given column by column (each a list or array of the same length;
        numbers as float64 with NaN for missing, the country as text): the service's fast path for a few
        rows, which families may override to skip building a DataFrame. Equal to :meth:`predict`."""
        return self.predict(pd.DataFrame({c: columns[c] for c in self.input_features}))


def family_class(name: str) -> type[ClvModel]:
    """The class of family ``name`` (``gbm`` or ``rf``)."""
    if name == "rf":
        from clvdrift.model.rf import RfModel

        return RfModel
    if name == "gbm":
        from clvdrift.model.gbm import GbmModel

        return GbmModel
    raise ConfigError(f"unknown model family {name!r}; expected gbm or rf")


def new_model(config: TrainConfig, family: str | None = None) -> ClvModel:
    """An unfitted model of ``family`` (default ``config.model``) with the config's hyper-parameters."""
    name = family or config.model
    if name == "rf":
        from clvdrift.model.rf import RfModel

        return RfModel(config.rf, min_country_customers=config.min_country_customers)
    if name == "gbm":
        from clvdrift.model.gbm import GbmModel

        return GbmModel(
            config.gbm, min_country_customers=config.min_country_customers, horizon_days=config.horizon_days
        )
    raise ConfigError(f"unknown model family {name!r}; expected gbm or rf")


def saved_params(params: type[P], document: Mapping[str, Any]) -> P:
    """The hyper-parameters a saved document records (names an earlier version did not have are left
    at their defaults; names it no longer knows are ignored)."""
    known = set(params.model_fields)
    return params(**{k: v for k, v in dict(document.get("params") or {}).items() if k in known})


def saved_encoder(document: Mapping[str, Any]) -> CountryEncoder:
    """The country encoder a saved document records."""
    encoder = CountryEncoder(min_customers=int(document["min_country_customers"]))
    encoder.levels_ = [str(c) for c in document["countries"]]
    return encoder


def check_family(document: Mapping[str, Any], where: str) -> str:
    family = str(document.get("family", "rf"))  # documents of earlier versions name no family: rf
    if family not in ("rf", "gbm"):
        raise ArtifactError(f"{where}: unknown model family {family!r}")
    return family


@dataclass(frozen=True)
class TrainingRecord:
    """What a registered version was trained on (the registry's ``training`` column, typed).

    Records of earlier versions lack the newer fields; they read as ``rf`` trained on one cutoff, whose
    evaluation was a random customer split. ``first_cutoff`` is the earliest training cutoff: the
    version saw the labels of every day in (``first_cutoff``, ``cutoff`` + H].
    """

    target: str
    cutoff: str | None
    horizon_days: int
    lookback_days: int | None = None
    family: str = "rf"
    first_cutoff: str | None = None
    stacked_cutoffs: int = 1
    rows: int | None = None
    snapshot: str | None = None
    customers: int | None = None
    train_customers: int | None = None
    test_customers: int | None = None
    target_days_covered: int | None = None
    zero_target_share: float | None = None
    evaluation: str = "random split"
    gate: dict[str, Any] | None = None
    evaluated_on: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, default_horizon: int = TrainConfig().horizon_days
    ) -> TrainingRecord:
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: data[k] for k in known if k in data}
        values.setdefault("target", "holdout")
        values.setdefault("cutoff", None)
        values["horizon_days"] = int(values.get("horizon_days") or default_horizon)
        extra = {k: v for k, v in data.items() if k not in known and k != "extra"}
        return cls(**values, extra={**dict(data.get("extra") or {}), **extra})

    @property
    def label_start(self) -> str | None:
        """The cutoff after which the version saw labels (its earliest training cutoff)."""
        return self.first_cutoff or self.cutoff

    def labels_overlap(self, cutoff: str, horizon_days: int) -> bool:
        """Whether the H-day label window after ``cutoff`` shares a day with the labels this version
        trained on; an unknown training cutoff counts as overlapping, a formula target never does."""
        if self.target == "formula":
            return False
        if self.cutoff is None or self.label_start is None:
            return True
        from clvdrift.features import parse_cutoff

        day = parse_cutoff(cutoff)
        start = parse_cutoff(self.label_start)
        end = parse_cutoff(self.cutoff) + pd.Timedelta(days=self.horizon_days)
        return bool(day < end and day + pd.Timedelta(days=horizon_days) > start)

    def to_dict(self) -> dict[str, Any]:
        out = dataclass_dict(self)
        extra = out.pop("extra", {}) or {}
        return {**extra, **out}
