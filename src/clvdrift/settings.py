"""One settings object for every adapter (env prefix ``CLVDRIFT_``).

Library functions take explicit arguments; only adapters (CLI, DAGs, service) read settings.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLVDRIFT_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///clvdrift.db",
        description="SQLAlchemy URL of the store (registry, run history). "
        "PostgreSQL: postgresql+psycopg://user@host:5432/db",
    )
    raw_data: Path = Field(default=Path("data/online_retail.csv.gz"), description="bundled transactions")
    models_dir: Path = Path("models")
    reference_dir: Path = Path("data/reference")
    current_dir: Path = Path("data/current")
    reports_dir: Path = Path("monitoring/reports")

    target: str = "holdout"
    horizon_days: int = Field(default=90, ge=1)
    lookback_days: int | None = Field(default=None, ge=1)
    min_country_customers: int = Field(default=10, ge=1)
    test_size: float = Field(default=0.2, gt=0, lt=1)
    random_state: int = 42

    # drift check (docs/drift.md, docs/drift_report.md); dicts are JSON in the environment, e.g.
    # CLVDRIFT_PER_COLUMN_STATTEST='{"Monetary": "psi"}'
    drift_share: float = Field(default=0.5, ge=0, le=1)
    key_columns: list[str] = Field(default_factory=lambda: ["Monetary", "prediction"])
    stattest: str | None = None
    per_column_stattest: dict[str, str] = Field(default_factory=dict)
    per_column_threshold: dict[str, float] = Field(default_factory=dict)
    fdr: bool = False
    calibrate: bool = False
    r2_drop_threshold: float = Field(default=0.10, ge=0)
    mae_increase_threshold: float = Field(default=0.25, ge=0)


def get_settings() -> Settings:
    return Settings()
