"""The reference engine: the rows in memory, cleaned by :func:`clvdrift.data.clean_transactions`,
held as :class:`clvdrift.features.TransactionLines`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clvdrift.data.clean import clean_transactions
from clvdrift.engines import OpenLines, Source
from clvdrift.features import TransactionLines

if TYPE_CHECKING:
    import pandas as pd


def open_lines(source: Source, *, today: pd.Timestamp | None, reason: str, rows: int) -> OpenLines:
    clean, report = clean_transactions(source.read(), today=today)
    return OpenLines(TransactionLines.from_frame(clean), report, "pandas", reason, rows)
