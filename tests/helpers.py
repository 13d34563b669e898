"""Test helpers importable from any test module (``pythonpath = tests``)."""

from __future__ import annotations

import pandas as pd

from clvdrift.data import schema


def dead_pid() -> int:
    """The PID of a process that has exited (of this host; not reused this soon)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def tx_frame(rows: list[tuple]) -> pd.DataFrame:
    """Transactions in the loader's output schema from rows of
    (invoice, stock, qty, date, price, customer, country)."""
    frame = pd.DataFrame(
        rows,
        columns=["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"],
    )
    frame["Description"] = pd.Series(["item"] * len(frame), dtype="string[pyarrow]")
    frame["Quantity"] = frame["Quantity"].astype("float64")
    frame["UnitPrice"] = frame["UnitPrice"].astype("float64")
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"])
    for name in ("InvoiceNo", "StockCode", "CustomerID", "Country"):
        frame[name] = frame[name].astype("category")
    return frame[list(schema.CANONICAL_COLUMNS)]


def synthetic_history(
    path, *, customers: int = 240, start: str = "2022-01-03", days: int = 420, seed: int = 0, sep: str = ","
) -> None:
    """Write a small transactions file shaped unlike the bundled one: another currency scale (prices
    around 40), other countries, two years of weekly-ish orders; every customer buys at a rate of their
    own, so the holdout target is learnable and ~30-60% of customers buy in any 90-day window."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rate = rng.gamma(1.5, 1 / 60, customers)  # orders per day
    country = rng.choice(["Norway", "Japan", "Brazil", "Kenya"], customers, p=[0.5, 0.2, 0.2, 0.1])
    rows = []
    invoice = 500000
    t0 = pd.Timestamp(start)
    for c in range(customers):
        n_orders = max(1, rng.poisson(rate[c] * days))
        for day in np.sort(rng.integers(0, days, n_orders)):
            invoice += 1
            for _ in range(rng.integers(1, 4)):
                rows.append(
                    (
                        f"{invoice}",
                        f"SKU{rng.integers(1, 60):03d}",
                        "thing",
                        int(rng.integers(1, 12)),
                        (t0 + pd.Timedelta(days=int(day), minutes=int(rng.integers(0, 600)))).strftime(
                            "%Y-%m-%d %H:%M"
                        ),
                        round(float(rng.lognormal(3.5, 0.6)), 2),
                        90000 + c,
                        country[c],
                    )
                )
    frame = pd.DataFrame(rows, columns=list(schema.CANONICAL_COLUMNS))
    frame.to_csv(path, index=False, sep=sep)


def workspace_env(root, raw_data) -> dict[str, str]:
    """The CLVDRIFT_* variables of a working folder of its own below ``root``: a SQLite store
    ``store.db`` and one folder per workspace folder (``clvdrift.pipeline.common.WORKSPACE_FOLDERS``)."""
    from pathlib import Path

    from clvdrift.pipeline.common import WORKSPACE_FOLDERS

    root = Path(root)
    return {
        "CLVDRIFT_DATABASE_URL": f"sqlite:///{root / 'store.db'}",
        "CLVDRIFT_RAW_DATA": str(raw_data),
        **{f"CLVDRIFT_{name.upper()}_DIR": str(root / name) for name in WORKSPACE_FOLDERS},
    }
