"""One settings object for every adapter (environment prefix ``CLVDRIFT_``).

Library functions take explicit arguments and the config objects of :mod:`clvdrift.config`; only
adapters (CLI, DAGs, service) read settings. Nested fields use ``__``:
``CLVDRIFT_DRIFT__DRIFT_SHARE=0.3``, ``CLVDRIFT_TRAIN__HORIZON_DAYS=60``, ``CLVDRIFT_GATE__TOLERANCE=0.01``,
``CLVDRIFT_DRIFT__PER_COLUMN_STATTEST='{"Monetary": "psi"}'`` (JSON for lists and maps).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from clvdrift.config import DriftConfig, GateConfig, LoopConfig, ServiceConfig, TrainConfig, config_error
from clvdrift.errors import ConfigError
from clvdrift.urls import mask_url

SAMPLE_DATA = Path(__file__).resolve().parent / "data" / "online_retail.csv.gz"
"""The bundled sample transactions (UCI Online Retail, CC BY 4.0: ``ONLINE_RETAIL.md`` beside it), inside
the package, so that ``clvdrift demo`` and ``train`` work wherever the package is installed."""

if TYPE_CHECKING:
    from clvdrift.pipeline.common import Workspace


_MEMORY = re.compile(r"\s*\d+(\.\d+)?\s*([KMGT]i?B?)\s*", re.IGNORECASE)  # what DuckDB's memory_limit reads


class Settings(BaseSettings):
    """Where things live, plus the training and drift configuration."""

    model_config = SettingsConfigDict(
        env_prefix="CLVDRIFT_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    database_url: str = Field(
        default="sqlite:///clvdrift.db",
        description="SQLAlchemy URL of the store (registry, run history). "
        "PostgreSQL: postgresql+psycopg://user@host:5432/db",
    )
    raw_data: Path = Field(default=SAMPLE_DATA, description="raw transactions (default: the bundled sample)")
    models_dir: Path = Path("models")
    reference_dir: Path = Path("data/reference")
    current_dir: Path = Path("data/current")
    reports_dir: Path = Path("monitoring/reports")
    quarantine_dir: Path = Field(default=Path("data/quarantine"), description="files that failed validation")
    history_dir: Path = Field(
        default=Path("data/history"), description="Parquet parts of the transaction history"
    )
    predictions_dir: Path = Field(
        default=Path("monitoring/predictions"), description="the service's logged predictions (Parquet parts)"
    )
    batch_mode: Literal["snapshot", "append"] = Field(
        default="snapshot",
        description="snapshot: a file in current_dir is the whole history; append: it holds new transactions",
    )
    pushgateway_url: str | None = Field(
        default=None,
        description="Prometheus Pushgateway base URL, e.g. http://pushgateway:9091; "
        "unset: runs write metrics_textfile instead",
    )
    metrics_textfile: Path = Field(
        default=Path("monitoring/metrics/clvdrift.prom"),
        description="node-exporter textfile the runs write when no Pushgateway is set",
    )
    engine: Literal["auto", "pandas", "duckdb", "dask"] = Field(
        default="auto",
        description="what cleans the transactions and computes the features: pandas (in memory), duckdb "
        "(out of core), dask (a cluster); auto: pandas below 1,000,000 raw rows, duckdb from there on",
    )
    dask_scheduler: str | None = Field(
        default=None,
        description="address of a dask.distributed scheduler for engine dask, e.g. tcp://10.0.0.5:8786; "
        "unset: a local cluster of two worker processes",
    )
    duckdb_memory_limit: str | None = Field(
        default=None, description="DuckDB's memory limit for engine duckdb, e.g. 2GB (unset: DuckDB's own)"
    )
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        default="warning", description="level of the clvdrift logger (stderr and log_file)"
    )
    log_file: Path | None = Field(default=None, description="also append JSON log lines to this file")
    api_key: SecretStr | None = Field(
        default=None,
        description="an API key of the service, for commands that call it (clvdrift deploy; "
        "clvdrift apikey create makes one)",
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)

    @field_validator("duckdb_memory_limit")
    @classmethod
    def _duckdb_memory_limit(cls, value: str | None) -> str | None:
        if value is not None and not _MEMORY.fullmatch(value):
            raise ValueError(f"{value!r} is not an amount of memory: a number and a unit, e.g. 512MB or 2GB")
        return value

    @field_validator("pushgateway_url")
    @classmethod
    def _pushgateway_url(cls, value: str | None) -> str | None:
        return None if value is None else check_pushgateway_url(value)

    def workspace(self) -> Workspace:
        """The store and working folders as the pipeline takes them (imported here, not at the top:
        ``clvdrift --help`` must not import the pipeline)."""
        from clvdrift.pipeline.common import Workspace

        return Workspace(**{f.name: getattr(self, f.name) for f in fields(Workspace)})


def check_pushgateway_url(value: str) -> str:
    """``value`` when the Pushgateway client can push to it: ``http(s)://host[:port][/prefix]`` or
    ``host[:port]`` (the client adds ``http://``); ValueError otherwise. The message does not repeat
    the value (pydantic's error shows it, and :func:`get_settings` hides its password)."""
    from urllib.parse import urlsplit

    expected = "expected e.g. http://pushgateway:9091"
    if "://" in value:
        if urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"not an http or https URL; {expected}")
        parts = urlsplit(value)
    elif "//" in value or ":/" in value:  # a scheme mistyped: http//host, http:/host
        raise ValueError(f"a mistyped scheme; {expected}")
    else:
        parts = urlsplit(f"http://{value}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"the port is not a number in 1-65535; {expected}") from None
    if not parts.hostname:
        raise ValueError(f"no host; {expected}")
    if port == 0:
        raise ValueError(f"port 0; {expected}")
    return value


def known_variables() -> set[str]:
    """Every ``CLVDRIFT_*`` environment variable the settings read."""
    names: set[str] = set()

    def add(prefix: str, model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            variable = f"{prefix}{name}".upper()
            names.add(variable)
            nested = field.annotation if isinstance(field.annotation, type) else None
            if nested is not None and issubclass(nested, BaseModel):  # e.g. CLVDRIFT_TRAIN__GBM__MAX_ITER
                add(f"{variable}__", nested)

    add("CLVDRIFT_", Settings)
    return names


def _check_names(environ: Mapping[str, str]) -> None:
    known = known_variables()
    for var in sorted(environ):
        upper = var.upper()
        if not upper.startswith("CLVDRIFT_") or upper.startswith("CLVDRIFT_TEST_") or upper in known:
            continue
        tail = upper.removeprefix("CLVDRIFT_")
        hint = [k for k in sorted(known) if k.endswith("__" + tail)]
        raise ConfigError(
            f"unknown setting {var}"
            + (f"; did you mean {hint[0]}?" if hint else f"; known settings: {', '.join(sorted(known))}")
        )


def _bad_groups(environ: Mapping[str, str]) -> list[str]:
    """The variables in ``environ`` that name a group of settings and hold no JSON object."""
    import json

    known = known_variables()
    groups = {k for k in known if any(other.startswith(k + "__") for other in known)}
    bad = []
    for var, value in sorted(environ.items()):
        if var.upper() not in groups:
            continue
        try:
            ok = isinstance(json.loads(value), dict)
        except ValueError:
            ok = False
        if not ok:
            bad.append(var)
    return bad


def get_settings() -> Settings:
    """The settings from the environment; an invalid or unknown ``CLVDRIFT_*`` variable is a
    :class:`ConfigError` (a misspelt name must not be silently ignored)."""
    _check_names(os.environ)
    try:
        return Settings()
    except ValidationError as exc:  # pydantic echoes the value given: a URL's password is hidden
        raise ConfigError(mask_url(str(config_error(exc, "CLVDRIFT_* setting")))) from None
    except SettingsError as exc:  # e.g. a value that is not JSON where JSON is expected
        bad = _bad_groups(os.environ)
        if bad:  # a group of settings (CLVDRIFT_TRAIN, CLVDRIFT_TRAIN__GBM, …) given as one variable
            raise ConfigError(
                f"invalid CLVDRIFT_* setting: {', '.join(bad)}: a group of settings needs a JSON object of "
                "them (e.g. CLVDRIFT_TRAIN__GBM='{\"max_iter\": 100}'), or set each one apart (e.g. "
                "CLVDRIFT_TRAIN__GBM__MAX_ITER=100)"
            ) from None
        cause = exc.__cause__ or exc
        raise ConfigError(mask_url(f"invalid CLVDRIFT_* setting: {exc} ({cause})")) from None
