"""What the online side serves: the champion in memory, predictions by feature row or by customer id, the
online drift check of feature rows, and the prediction log.

- :func:`load_serving_champion`: the champion's model, training record and reference profile, each
  checked against the sha256 the registry recorded. :func:`champion_version` is the cheap question "is
  this still the champion?" a server asks every few seconds to reload after a promotion or rollback made
  by any process.
- :func:`predict_rows`: predictions for feature rows given by the caller (the model's input features;
  a missing one is a :class:`DataError` naming it).
- :func:`customer_predictions`: every customer's prediction from the transaction history, computed with
  ``clvdrift predict``'s function (:func:`clvdrift.pipeline.predict.predict_customers`) at the history's
  last day, and kept until the history or the champion changes (:attr:`CustomerPredictions.key`).
- :func:`online_drift`: feature rows against the champion's reference profile, per feature: PSI for
  numerical and chi-square for categorical features by default (any test of the engine by parameter), a
  score and a severity ``ok`` / ``warning`` / ``critical``.
- :func:`log_predictions`: a batch of served predictions (features and prediction) written as a Parquet
  part and recorded in the store, for the worker's drift checks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import numpy as np
import pandas as pd

from clvdrift.config import DriftConfig
from clvdrift.errors import ConfigError, DataError, NotFoundError
from clvdrift.features import COUNTRY, HISTORY_FEATURES, NUMERIC_FEATURES, SEASON_FEATURES
from clvdrift.jsonable import dataclass_dict
from clvdrift.pipeline.common import Workspace, new_id

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from clvdrift.drift import ReferenceProfile
    from clvdrift.model.base import ClvModel, TrainingRecord

__all__ = [
    "CATEGORICAL_FEATURES",
    "NUMERICAL_FEATURES",
    "CustomerPredictions",
    "FeatureRow",
    "OnlineDrift",
    "ServingChampion",
    "champion_version",
    "customer_predictions",
    "feature_rows",
    "history_key",
    "load_serving_champion",
    "log_predictions",
    "online_drift",
    "predict_rows",
]

NUMERICAL_FEATURES: tuple[str, ...] = (*NUMERIC_FEATURES, *HISTORY_FEATURES, *SEASON_FEATURES)
"""Every numerical feature a model family may read."""
CATEGORICAL_FEATURES: tuple[str, ...] = (COUNTRY,)
Severity = Literal["ok", "warning", "critical"]
_SEVERITY_ORDER = {"ok": 0, "warning": 1, "critical": 2}
DISTANCE_TESTS = frozenset({"psi", "jensenshannon", "wasserstein"})


@dataclass(frozen=True)
class ServingChampion:
    """The champion as the server holds it in memory."""

    version: str
    family: str
    training: TrainingRecord
    model: ClvModel
    profile: ReferenceProfile
    loaded_at: datetime

    @property
    def input_features(self) -> list[str]:
        return list(self.model.input_features)

    @property
    def horizon_days(self) -> int:
        return self.training.horizon_days

    @property
    def cutoff(self) -> str | None:
        """The cutoff the champion was trained at."""
        return self.training.cutoff

    def describe(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "family": self.family,
            "target": self.training.target,
            "cutoff": self.cutoff,
            "horizon_days": self.horizon_days,
            "lookback_days": self.training.lookback_days,
            "input_features": self.input_features,
            "loaded_at": self.loaded_at.isoformat(),
        }


def champion_version(engine: Engine) -> str | None:
    """The champion's version now (one indexed query), ``None`` when there is none."""
    from sqlalchemy import select

    from clvdrift.store.db import session_scope
    from clvdrift.store.tables import ModelVersionRow

    with session_scope(engine) as session:
        return session.scalar(select(ModelVersionRow.version).where(ModelVersionRow.is_champion))


def load_serving_champion(
    workspace: Workspace, engine: Engine | None = None, *, version: str | None = None
) -> ServingChampion:
    """The champion (or, with ``version``, that registered version), its files checked against the
    registry; :class:`NoChampionError` when there is no champion, :class:`NotFoundError` for an unknown
    version."""
    from clvdrift.model.artifacts import load_model
    from clvdrift.model.base import TrainingRecord
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.pipeline.common import load_champion, load_profile
    from clvdrift.store import connect

    registry = ModelRegistry(engine if engine is not None else connect(workspace.database_url))
    if version is None:
        record, model = load_champion(registry, workspace.models_dir)
    else:
        record = registry.get(version)
        model = load_model(Path(workspace.models_dir), record.version, expected=record.artifacts)
    info = record.artifacts["profile"]
    profile = load_profile(Path(workspace.models_dir), info)
    return ServingChampion(
        version=record.version,
        family=model.family,
        training=TrainingRecord.from_dict(record.training),
        model=model,
        profile=profile,
        loaded_at=datetime.now(UTC),
    )


FeatureRow: Any = msgspec.defstruct(
    "FeatureRow",
    [
        *((c, float | None | msgspec.UnsetType, msgspec.UNSET) for c in NUMERICAL_FEATURES),
        *((c, str | None | msgspec.UnsetType, msgspec.UNSET) for c in CATEGORICAL_FEATURES),
    ],
    omit_defaults=True,
)
"""One feature row as the service decodes it (``msgspec``): any feature a model family reads, each
optional (absent is ``UNSET``), ``null`` a missing value; a number where text belongs or the reverse, a
boolean or a non-finite number is refused while decoding; other keys are ignored."""


def feature_rows(rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """``rows`` (mappings) as :data:`FeatureRow` values; a value of the wrong type is a
    :class:`DataError` saying where."""
    try:
        return msgspec.convert(list(rows), list[FeatureRow], strict=True)  # type: ignore[valid-type]
    except msgspec.ValidationError as exc:
        raise DataError(f"feature rows: {exc}") from None


def _feature_columns(rows: Sequence[Any], columns: Sequence[str], what: str) -> dict[str, Any]:
    """:data:`FeatureRow` values column by column (numbers as float64 arrays, the country as a list of
    text). A column a row does not have or a non-finite number is a :class:`DataError` naming the row and
    the column; ``null`` is a missing value (NaN), as the features have for e.g. the days between the
    orders of a one-order customer. (Values are gathered column by column with ``attrgetter``: the 10,000
    rows of a batch in a few milliseconds.)"""
    from operator import attrgetter

    if not rows:
        raise DataError(f"{what}: no rows")
    data: dict[str, Any] = {}
    numeric = [c for c in columns if c not in CATEGORICAL_FEATURES]
    try:  # one pass over the rows; an absent value (UNSET) makes the conversion fail
        tuples = list(map(attrgetter(*numeric), rows)) if numeric else []
        matrix = np.array(tuples, dtype=np.float64).reshape(len(rows), len(numeric))  # None becomes NaN
    except (TypeError, ValueError):
        _absent(rows, numeric, columns, what)
        raise
    infinite = np.isinf(matrix)
    if infinite.any():
        i, j = (int(k[0]) for k in np.nonzero(infinite))
        raise DataError(f"{what}: row {i}: {numeric[j]!r} is not a finite number")
    data = {c: matrix[:, j] for j, c in enumerate(numeric)}
    for column in columns:
        if column not in CATEGORICAL_FEATURES:
            continue
        values: list[Any] = [getattr(r, column) for r in rows]
        if msgspec.UnsetType in set(map(type, values)):
            _absent(rows, [column], columns, what)
        distinct = {t for t in values if t is not None}
        wrong = {t for t in distinct if len(t) > 64 or not t.isprintable() or not _utf8(t)}
        if wrong:  # each distinct value checked once (a batch holds a few countries)
            i = next(i for i, t in enumerate(values) if t in wrong)
            raise DataError(f"{what}: row {i}: {column!r} is not a printable text of 64 characters at most")
        data[column] = values
    return {c: data[c] for c in columns}


def _absent(rows: Sequence[Any], check: Sequence[str], columns: Sequence[str], what: str) -> None:
    """A :class:`DataError` naming the first of ``check`` that a row does not have, if any."""
    for column in check:
        absent = [i for i, r in enumerate(rows) if getattr(r, column) is msgspec.UNSET]
        if absent:
            raise DataError(
                f"{what}: row {absent[0]} has no {column!r} ({len(absent)} row(s) miss it); the champion "
                f"reads {list(columns)}"
            )


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not storable text
        return False
    return True


def _feature_frame(rows: Sequence[Any], columns: Sequence[str], what: str) -> pd.DataFrame:
    """:func:`_feature_columns` as a frame."""
    return pd.DataFrame(_feature_columns(rows, columns, what))


def predict_rows(champion: ServingChampion, rows: Sequence[Any]) -> tuple[dict[str, Any], np.ndarray]:
    """The champion's predictions for feature rows (:data:`FeatureRow` values, e.g. from
    :func:`feature_rows`; each must hold the model's input features); returns the features column by
    column and the predictions."""
    columns = _feature_columns(rows, champion.input_features, "feature rows")
    return columns, np.asarray(champion.model.predict_columns(columns), dtype=np.float64)


def history_key(workspace: Workspace, engine: Engine | None = None) -> tuple[str, ...]:
    """The current batches of the transaction history (changes whenever a batch is added or dropped)."""
    from clvdrift.data.history import TransactionHistory, current_batches
    from clvdrift.store import connect

    history = TransactionHistory(
        workspace.history_dir, engine if engine is not None else connect(workspace.database_url)
    )
    return tuple(b.batch_id for b in current_batches(history.batches()))


@dataclass(frozen=True)
class CustomerPredictions:
    """Every customer's prediction from the transaction history (or, with an empty history, the raw data
    file) at its last day, by the champion ``version``."""

    version: str
    key: tuple[str, ...]
    """The history batches it was computed from (:func:`history_key`)."""
    source: str
    cutoff: str
    features_from: str
    horizon_days: int
    total_status: str
    frame: pd.DataFrame
    """Index: customer id (text); ``predicted_revenue`` and the model's input features."""

    def lookup(self, customer_ids: Sequence[str | int]) -> pd.DataFrame:
        """The rows of ``customer_ids``; :class:`NotFoundError` naming the unknown ones."""
        ids = [re.sub(r"\.0+$", "", str(c).strip()) for c in customer_ids]  # 17850.0 is 17850, as loaded
        unknown = [c for c in ids if c not in self.frame.index]
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:5]) + (" …" if len(unknown) > 5 else "")
            raise NotFoundError(f"customer(s) {shown} not in the transaction history up to {self.cutoff}")
        return self.frame.loc[ids]


def customer_predictions(
    workspace: Workspace, champion: ServingChampion, engine: Engine | None = None
) -> CustomerPredictions:
    """Every customer's prediction (:class:`CustomerPredictions`), with ``clvdrift predict``'s function."""
    from clvdrift.pipeline.predict import predict_customers, predict_input

    if champion.training.target != "holdout":
        raise ConfigError(
            f"the champion {champion.version} predicts the seed's formula target, not future revenue; "
            "train a holdout model to serve predictions by customer"
        )
    key = history_key(workspace, engine)
    raw, source = predict_input(workspace)
    with workspace.engines.open(raw) as opened:
        frame, season = predict_customers(opened.lines, champion.model, champion.training, with_features=True)
    frame.index = frame.index.astype(str)
    first = frame.iloc[0]
    return CustomerPredictions(
        version=champion.version,
        key=key,
        source=source,
        cutoff=str(first["cutoff"]),
        features_from=str(first["features_from"]),
        horizon_days=champion.horizon_days,
        total_status=str(season["status"]),
        frame=frame,
    )


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str
    test: str
    statistic: float | None
    p_value: float | None
    score: float | None
    """The test's statistic for a distance test (PSI, Jensen-Shannon, Wasserstein), else the effect size
    (Jensen-Shannon distance for a categorical, normed Wasserstein for a numerical feature)."""
    drifted: bool
    severity: Severity

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


@dataclass(frozen=True)
class OnlineDrift:
    """One online drift check of feature rows against the champion's reference profile."""

    event_id: str
    created_at: datetime
    source: str
    model_version: str
    rows: int
    severity: Severity
    """The worst feature's."""
    warning: float
    critical: float
    features: list[FeatureDrift]
    dataset_drift: bool
    """The drift engine's decision on these rows (drift share, key columns: ``DriftConfig``)."""
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def _severity(score: float | None, warning: float, critical: float) -> Severity:
    if score is None or not math.isfinite(score):
        return "critical" if score is not None else "ok"  # an infinite score: a value never seen
    return "critical" if score >= critical else "warning" if score >= warning else "ok"


def online_drift(
    champion: ServingChampion,
    rows: Sequence[Any] | pd.DataFrame,
    *,
    numerical_test: str = "psi",
    categorical_test: str = "chisquare",
    warning: float = 0.2,
    critical: float = 0.5,
    source: str = "api",
    rules: DriftConfig | None = None,
) -> OnlineDrift:
    """Feature rows against the champion's reference profile (module docstring): ``numerical_test`` for
    the numerical and ``categorical_test`` for the categorical features (any test of the engine that
    applies to the kind); the features checked are those of the rows that the profile holds (at least
    one). A test that does not apply to a kind is a :class:`ConfigError` saying which do.

    ``rules``: decide with the monitoring cycle's drift configuration instead (its tests, thresholds,
    drift share and key columns; the two tests are then not used), as the worker does."""
    from clvdrift.drift import detect_data_drift
    from clvdrift.drift.stattests import TEST_NAMES

    for test in (numerical_test, categorical_test):
        if test not in TEST_NAMES:
            raise ConfigError(f"unknown drift test {test!r}; choose one of {list(TEST_NAMES)}")
    if not warning <= critical:
        raise ConfigError(f"the warning score {warning} is above the critical score {critical}")
    profiled = [*champion.profile.numerical_columns, *champion.profile.categorical_columns]
    given = set(rows.columns) if isinstance(rows, pd.DataFrame) else _given(rows, profiled)
    columns = [c for c in profiled if c in given and c not in ("target",)]
    if not columns:
        raise DataError(f"drift rows: none of the profiled features {profiled} is given")
    frame = rows[columns] if isinstance(rows, pd.DataFrame) else _feature_frame(rows, columns, "drift rows")
    categorical = set(champion.profile.categorical_columns)
    tests = {c: categorical_test if c in categorical else numerical_test for c in columns}
    config = rules if rules is not None else DriftConfig(per_column_stattest=tests, key_columns=())
    result = detect_data_drift(champion.profile, frame, config, columns=columns)
    features = []
    for c in result.columns:
        score = c.statistic if c.test in DISTANCE_TESTS else c.effect_size
        features.append(
            FeatureDrift(
                feature=c.column,
                kind=c.kind,
                test=c.test,
                statistic=c.statistic,
                p_value=c.p_value,
                score=score,
                drifted=bool(c.drifted),
                severity=_severity(score, warning, critical),
            )
        )
    worst: Severity = max((f.severity for f in features), key=_SEVERITY_ORDER.__getitem__, default="ok")
    return OnlineDrift(
        event_id=new_id("odrift"),
        created_at=datetime.now(UTC),
        source=source,
        model_version=champion.version,
        rows=len(frame),
        severity=worst,
        warning=warning,
        critical=critical,
        features=features,
        dataset_drift=bool(result.dataset_drift),
        reasons=list(result.reasons) if result.dataset_drift else [],
    )


def _given(rows: Sequence[Any], columns: Sequence[str]) -> set[str]:
    """The ``columns`` that at least one of the :data:`FeatureRow` values ``rows`` holds."""
    from operator import attrgetter

    fields = set(FeatureRow.__struct_fields__)
    return {
        c for c in columns if c in fields and any(v is not msgspec.UNSET for v in map(attrgetter(c), rows))
    }


def drift_event(drift: OnlineDrift) -> Any:
    """``drift`` as the store's drift event record."""
    from clvdrift.store.online import DriftEvent

    return DriftEvent(
        event_id=drift.event_id,
        created_at=drift.created_at,
        source=drift.source,
        model_version=drift.model_version,
        rows=drift.rows,
        severity=drift.severity,
        result=drift.to_dict(),
    )


def record_drift(engine: Engine, drift: OnlineDrift) -> None:
    """Store ``drift`` as a drift event (``GET /drift/history``)."""
    from clvdrift.store.online import DriftEvents

    DriftEvents(engine).add(drift_event(drift))


def log_predictions(workspace: Workspace, engine: Engine, version: str, frame: pd.DataFrame) -> str:
    """Write served predictions (``frame``: features and ``prediction``) as a Parquet part of the
    prediction log and record it; returns its batch id."""
    from clvdrift.io import atomic_write, sha256_file
    from clvdrift.store.online import PredictionBatch, PredictionLog

    batch_id = new_id("pred")
    folder = Path(workspace.predictions_dir)
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{batch_id}.parquet"
    atomic_write(part, lambda tmp: frame.reset_index(drop=True).to_parquet(tmp, index=False))
    PredictionLog(engine).add(
        PredictionBatch(
            batch_id=batch_id,
            created_at=datetime.now(UTC),
            model_version=version,
            rows=len(frame),
            part_file=part.name,
            part_sha256=sha256_file(part),
            checked_by=None,
        )
    )
    return batch_id
