"""Write a drift scenario of the raw transactions to ``current_dir/current_data.csv``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clvdrift.data import load_transactions, schema, simulate_scenario
from clvdrift.io import atomic_write
from clvdrift.jsonable import dataclass_dict
from clvdrift.pipeline.detect import CURRENT_FILE

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class SimulateResult:
    """The scenario file written."""

    scenario: str
    seed: int
    rows: int
    path: str
    mean_quantity: float
    mean_unit_price: float

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def write_transactions_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write transactions in the canonical columns with ISO dates, atomically."""
    out = frame[list(schema.CANONICAL_COLUMNS)].copy()
    out[schema.INVOICE_DATE] = out[schema.INVOICE_DATE].dt.strftime("%Y-%m-%d %H:%M:%S")
    out[schema.QUANTITY] = out[schema.QUANTITY].astype("Int64")
    atomic_write(Path(path), lambda tmp: out.to_csv(tmp, index=False))


def simulate(
    data_path: Path,
    scenario: str,
    *,
    seed: int,
    current_dir: Path,
    date_format: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> SimulateResult:
    """Write ``scenario`` of the raw transactions to ``current_dir/current_data.csv``."""
    raw = load_transactions(data_path, date_format=date_format, columns=columns)
    drifted = simulate_scenario(raw, scenario, seed=seed)
    path = Path(current_dir) / CURRENT_FILE
    write_transactions_csv(drifted, path)
    return SimulateResult(
        scenario=scenario,
        seed=seed,
        rows=len(drifted),
        path=str(path),
        mean_quantity=float(drifted[schema.QUANTITY].mean()),
        mean_unit_price=float(drifted[schema.UNIT_PRICE].mean()),
    )
