"""Test helpers importable from any test module (``pythonpath = tests``)."""

from __future__ import annotations

import pandas as pd

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def tx_frame(rows: list[tuple]) -> pd.DataFrame:
    """Transactions in the loader's output schema from (invoice, stock, qty, date, price, customer, country)."""
    frame = pd.DataFrame(rows, columns=["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice",
                                        "CustomerID", "Country"])
    frame["Description"] = pd.Series(["item"] * len(frame), dtype="string[pyarrow]")
    frame["Quantity"] = frame["Quantity"].astype("float64")
    frame["UnitPrice"] = frame["UnitPrice"].astype("float64")
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"])
    for name in ("InvoiceNo", "StockCode", "CustomerID", "Country"):
        frame[name] = frame[name].astype("category")
    return frame[["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
                  "CustomerID", "Country"]]
