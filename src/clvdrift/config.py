"""The configuration objects of clvdrift: every default lives here, once.

:class:`DriftConfig` (the data- and model-drift check) and :class:`TrainConfig` (features, target,
split, validation of a training set) are frozen pydantic models. Library functions take them whole;
:class:`clvdrift.settings.Settings` nests them, so ``CLVDRIFT_DRIFT__DRIFT_SHARE=0.3`` or
``CLVDRIFT_TRAIN__HORIZON_DAYS=60`` set a field from the environment. An invalid value raises
:class:`clvdrift.errors.ConfigError` naming the field (see :func:`validated`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clvdrift.errors import ConfigError

__all__ = [
    "MODEL_FAMILIES",
    "SCENARIO_SEED",
    "STATTESTS",
    "DriftConfig",
    "GateConfig",
    "GbmParams",
    "LoopConfig",
    "RfParams",
    "TrainConfig",
    "config_error",
    "validated",
]

STATTESTS: tuple[str, ...] = ("chisquare", "jensenshannon", "ks", "psi", "wasserstein", "z")
# columns tested for data drift by the pipeline: the features, Country and the prediction
DEFAULT_KEY_COLUMNS: tuple[str, ...] = ("Monetary", "prediction")
SCENARIO_SEED = 42  # the seed of the drift scenarios (simulate, demo) unless one is given


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DriftConfig(_Frozen):
    """How a batch is checked for data drift and model drift (docs/drift.md)."""

    drift_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="share of drifted columns that is dataset drift (Evidently's rule)",
    )
    key_columns: tuple[str, ...] = Field(
        default=DEFAULT_KEY_COLUMNS, description="a drift of any of these alone is dataset drift"
    )
    stattest: str | None = Field(
        default=None, description="test for every column (default: Evidently's choice per column)"
    )
    per_column_stattest: dict[str, str] = Field(default_factory=dict)
    per_column_threshold: dict[str, float] = Field(default_factory=dict)
    fdr: bool = Field(default=False, description="Benjamini-Hochberg across the p-values of one check")
    calibrate: bool = Field(
        default=False,
        description="calibrate each column's threshold to the window size with a permutation null",
    )
    calibration_trials: int = Field(default=200, ge=19)
    calibration_alpha: float = Field(
        default=0.05, gt=0, lt=1, description="false-alarm level of a calibrated distance test"
    )
    seed: int = 0
    missing_share_threshold: float = Field(default=0.05, ge=0, le=1)
    correlation_threshold: float = Field(default=0.2, ge=0, le=2)
    r2_drop_threshold: float = Field(default=0.10, ge=0, description="model drift: relative R² drop")
    mae_increase_threshold: float = Field(default=0.25, ge=0, description="model drift: relative MAE rise")
    min_scored_customers: int = Field(
        default=10, ge=1, description="model drift: fewer customers with matured labels → not assessed"
    )

    @field_validator("stattest")
    @classmethod
    def _known_test(cls, v: str | None) -> str | None:
        if v is not None and v not in STATTESTS:
            raise ValueError(f"unknown test {v!r}; choose one of {list(STATTESTS)}")
        return v

    @field_validator("per_column_stattest")
    @classmethod
    def _known_tests(cls, v: dict[str, str]) -> dict[str, str]:
        bad = {c: t for c, t in v.items() if t not in STATTESTS}
        if bad:
            raise ValueError(f"unknown test(s) {bad}; choose from {list(STATTESTS)}")
        return v

    @field_validator("per_column_threshold")
    @classmethod
    def _finite_thresholds(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {c: t for c, t in v.items() if not (t == t and t >= 0 and t != float("inf"))}
        if bad:
            raise ValueError(f"thresholds must be finite numbers >= 0, got {bad}")
        return v


class RfParams(_Frozen):
    """The seed's model (``--model rf``): StandardScaler + RandomForestRegressor on one cutoff."""

    n_estimators: int = Field(default=100, ge=1, le=5000)
    max_depth: int | None = Field(default=10, ge=1)
    min_samples_split: int = Field(default=10, ge=2)
    min_samples_leaf: int = Field(default=5, ge=1)
    random_state: int = Field(default=42, ge=0, le=2**32 - 1)


class GbmParams(_Frozen):
    """The default model (``--model gbm``): gradient-boosted trees with a Poisson loss, trained on
    stacked past cutoffs (docs/model.md). Two boosted models are averaged: one on the whole-history
    features of the seed, one on every feature (windows, tenure, trend, season)."""

    learning_rate: float = Field(default=0.05, gt=0, le=1, allow_inf_nan=False)
    max_iter: int = Field(default=200, ge=1, le=5000)
    max_leaf_nodes: int = Field(default=15, ge=2, le=4096)
    min_samples_leaf: int = Field(
        default=100, ge=1, description="rows per leaf at least (capped at 1/40 of the rows, at least 5)"
    )
    l2_regularization: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    random_state: int = Field(default=42, ge=0, le=2**32 - 1)
    step_days: int = Field(default=7, ge=1, le=366, description="days between stacked training cutoffs")
    min_history_days: int = Field(
        default=90, ge=0, description="a stacked cutoff needs this many days of history before it"
    )
    max_cutoffs: int = Field(default=104, ge=1, le=10_000, description="at most this many stacked cutoffs")
    btyd: bool = Field(
        default=True,
        description="average the boosters with the BG/NBD × Gamma-Gamma expected revenue (docs/model.md)",
    )
    seasonal_min_span_days: int = Field(
        default=365,
        ge=1,
        description="the season features (calendar position, last year's revenue) are used when the "
        "stacked cutoffs span at least this many days",
    )


MODEL_FAMILIES: tuple[str, ...] = ("gbm", "rf")


class TrainConfig(_Frozen):
    """How a training set is built, split and checked before a model is fitted, and which model."""

    model: Literal["gbm", "rf"] = Field(default="gbm", description="the model family (--model)")
    gbm: GbmParams = GbmParams()
    rf: RfParams = RfParams()
    target: Literal["holdout", "formula"] = "holdout"
    horizon_days: int = Field(default=90, ge=1, le=3660, description="H: the holdout window in days")
    lookback_days: int | None = Field(
        default=None, ge=1, description="features from the last L days only (default: all history)"
    )
    min_country_customers: int = Field(default=10, ge=1)
    test_size: float = Field(default=0.2, gt=0, lt=1)
    random_state: int = Field(default=42, ge=0, le=2**32 - 1)
    min_customers: int = Field(default=10, ge=2, description="refuse a training set with fewer customers")
    min_positive_target_share: float = Field(
        default=0.01, ge=0, lt=1, description="refuse a holdout target with fewer buyers than this share"
    )


class GateConfig(_Frozen):
    """How a challenger is judged against the champion on the newest matured window (docs: issue 7).

    The challenger is promoted unless it is worse than the champion by more than ``tolerance`` on
    ``primary_metric``: an absolute difference for Spearman and normalized Gini (higher is better), a
    relative one for MAE (lower is better; 0.02 = 2% higher MAE is still accepted).
    """

    primary_metric: Literal["spearman", "gini_normalized", "mae"] = "spearman"
    tolerance: float = Field(
        default=0.02, ge=0, allow_inf_nan=False, description="absolute (Spearman, Gini) or relative (MAE)"
    )


class LoopConfig(_Frozen):
    """How the monitoring cycle takes files in and waits for another cycle (docs/operations.md)."""

    settle_seconds: float = Field(
        default=2.0,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description="a file is taken in only when its size and mtime stayed the same this long and no "
        "process of this host has it open for writing",
    )
    suspect_settle_seconds: float = Field(
        default=20.0,
        ge=0,
        le=86_400,
        allow_inf_nan=False,
        description="a file that looks cut off (fails validation, or a text file whose last line has no "
        "line break) is quarantined or taken in only once unchanged this long: a writer may have paused",
    )
    max_snapshot_shrink: float = Field(
        default=0.5,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="a snapshot with fewer rows than (1 - this) x the history's is quarantined "
        "(1: any size is accepted)",
    )
    lock_wait_seconds: float = Field(
        default=0.0,
        ge=0,
        le=86_400,
        allow_inf_nan=False,
        description="how long a cycle waits for another cycle of the same store before giving up (exit 5)",
    )
    retrain: Literal["inline", "queue"] = Field(
        default="inline",
        description="inline: a cycle that finds drift retrains itself; queue: it enqueues a retrain job "
        "for `clvdrift worker`",
    )


M = TypeVar("M", bound=BaseModel)


def config_error(exc: ValidationError, where: str) -> ConfigError:
    """A one-line :class:`ConfigError` naming each invalid field and why."""
    parts = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"]) or where
        parts.append(
            f"{loc!r}: {e['msg']} (got {e.get('input')!r:.120})"
            if "\n" in loc
            else f"{loc}: {e['msg']} (got {e.get('input')!r:.120})"
        )
    return ConfigError(f"invalid {where}: " + "; ".join(parts))


def validated(model: type[M], where: str, /, **values: Any) -> M:
    """``model(**values)``, raising :class:`ConfigError` instead of pydantic's ValidationError."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise config_error(exc, where) from None


class QualityThresholds(_Frozen):
    """The quality floor of a model version, on its time-split evaluation (what ``clvdrift train``
    reports: the newest matured window the model did not train on). No defaults: the thresholds live in
    a file the operator keeps (``deploy/model_thresholds.toml``), read by :meth:`from_file`, so CI's
    quality gate and ``clvdrift deploy`` judge by the same numbers."""

    min_spearman: float = Field(ge=-1, le=1, allow_inf_nan=False, strict=True)
    min_gini_normalized: float = Field(ge=-1, le=1, allow_inf_nan=False, strict=True)
    min_top10_capture: float = Field(ge=0, le=1, allow_inf_nan=False, strict=True)
    max_mae_vs_persistence: float = Field(
        gt=0,
        allow_inf_nan=False,
        strict=True,
        description="the model's MAE ÷ persistence's on the same customers",
    )

    @classmethod
    def from_file(cls, path: Path) -> QualityThresholds:
        """The thresholds of a TOML file; :class:`ConfigError` naming the file when it cannot be read or
        holds a wrong, missing or unknown key."""
        import tomllib

        try:
            values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"quality thresholds {path}: cannot read it ({exc.strerror or exc})") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ConfigError(f"quality thresholds {path}: not valid TOML ({exc!s:.200})") from None
        return validated(cls, f"quality thresholds {path}", **values)


class ServiceConfig(_Frozen):
    """The online side: ``clvdrift serve`` (the HTTP API) and ``clvdrift worker``."""

    host: str = Field(default="127.0.0.1", description="address the API binds (--host)")
    port: int = Field(default=8000, ge=1, le=65535, description="port of the API (--port)")
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="larger request bodies are refused (413)"
    )
    max_batch_rows: int = Field(default=10_000, ge=1, le=1_000_000, description="rows per request at most")
    champion_poll_seconds: float = Field(
        default=2.0, gt=0, le=3600, description="how often the API looks for a new champion"
    )
    prediction_log_rows: int = Field(
        default=5_000, ge=1, description="logged predictions are written when this many are buffered"
    )
    prediction_log_seconds: float = Field(
        default=10.0, gt=0, description="… or when the oldest buffered one is this old"
    )
    drift_warning: float = Field(default=0.2, ge=0, description="online drift score of a warning")
    drift_critical: float = Field(default=0.5, ge=0, description="online drift score of a critical drift")
    worker_interval_seconds: float = Field(
        default=30.0, gt=0, description="how often the worker checks logged predictions and the history"
    )
    job_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="a running job without a heartbeat for this long is retried",
    )
