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


def get_settings() -> Settings:
    return Settings()
